"""The textbook L2 learning switch, behaving like POX's forwarding.l2_learning.

For every packet-in:
  * learn source MAC -> in_port (per switch);
  * destination multicast/broadcast, or not learned yet -> packet-out FLOOD;
  * destination learned on the port the packet came in on -> drop;
  * otherwise -> flow-mod with an exact match on the packet (idle 10 s,
    hard 30 s) and the packet itself goes out (in the flow-mod's buffer, or
    in a packet-out when the switch sent the full frame, as OVS 3.x does).

One difference from POX: each flow-mod asks for a flow_removed message
(OFPFF_SEND_FLOW_REM), so the controller channel -- and `labctl trace` -- shows
when and why every flow leaves (idle or hard timeout). Forwarding is the same.

OpenFlow 1.0 and 1.3.
"""

from __future__ import annotations

import ipaddress

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import arp, ether_types, ethernet, icmp, ipv4, packet, tcp, udp, vlan
from os_ken.ofproto import ofproto_v1_0, ofproto_v1_3

IDLE_TIMEOUT = 10
HARD_TIMEOUT = 30
PRIORITY = 0x8000  # OFP_DEFAULT_PRIORITY, as POX uses


def _mac_text(raw: bytes) -> str:
    return raw.hex(":")


def _ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def exact_match_v10(parser, pkt: packet.Packet, in_port: int):
    """The OpenFlow 1.0 12-tuple of a frame, like POX's ofp_match.from_packet."""
    eth = pkt.get_protocol(ethernet.ethernet)
    fields = {
        "in_port": in_port,
        "dl_src": eth.src,
        "dl_dst": eth.dst,
        "dl_vlan": 0xFFFF,
        "dl_type": eth.ethertype,
    }
    tag = pkt.get_protocol(vlan.vlan)
    if tag is not None:
        fields.update(dl_vlan=tag.vid, dl_vlan_pcp=tag.pcp, dl_type=tag.ethertype)
    ip, arp_ = pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(arp.arp)
    if ip is not None:
        fields.update(nw_tos=ip.tos & 0xFC, nw_proto=ip.proto, nw_src=_ip(ip.src), nw_dst=_ip(ip.dst))
        l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
        icmp_ = pkt.get_protocol(icmp.icmp)
        if l4 is not None:
            fields.update(tp_src=l4.src_port, tp_dst=l4.dst_port)
        elif icmp_ is not None:
            fields.update(tp_src=icmp_.type, tp_dst=icmp_.code)
    elif arp_ is not None:
        fields.update(nw_proto=arp_.opcode, nw_src=_ip(arp_.src_ip), nw_dst=_ip(arp_.dst_ip))
    return parser.OFPMatch(**fields)


def exact_match_v13(parser, pkt: packet.Packet, in_port: int):
    """The same exact match in OXM fields, respecting OpenFlow 1.3 prerequisites."""
    eth = pkt.get_protocol(ethernet.ethernet)
    fields = {"in_port": in_port, "eth_src": eth.src, "eth_dst": eth.dst, "eth_type": eth.ethertype}
    tag = pkt.get_protocol(vlan.vlan)
    if tag is not None:
        fields.update(vlan_vid=0x1000 | tag.vid, vlan_pcp=tag.pcp, eth_type=tag.ethertype)
    ip, arp_ = pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(arp.arp)
    if ip is not None:
        fields.update(ip_dscp=ip.tos >> 2, ip_proto=ip.proto, ipv4_src=ip.src, ipv4_dst=ip.dst)
        for proto, src, dst in ((tcp.tcp, "tcp_src", "tcp_dst"), (udp.udp, "udp_src", "udp_dst")):
            l4 = pkt.get_protocol(proto)
            if l4 is not None:
                fields.update({src: l4.src_port, dst: l4.dst_port})
        icmp_ = pkt.get_protocol(icmp.icmp)
        if icmp_ is not None:
            fields.update(icmpv4_type=icmp_.type, icmpv4_code=icmp_.code)
    elif arp_ is not None:
        fields.update(
            arp_op=arp_.opcode,
            arp_spa=arp_.src_ip,
            arp_tpa=arp_.dst_ip,
            arp_sha=arp_.src_mac,
            arp_tha=arp_.dst_mac,
        )
    return parser.OFPMatch(**fields)


class L2Learning(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_0.OFP_VERSION, ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mac_to_port: dict[int, dict[str, int]] = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_switch_features(self, ev):
        dp = ev.msg.datapath
        self.mac_to_port[dp.id] = {}
        self.logger.info("switch %016x connected (OpenFlow 0x%02x)", dp.id, dp.ofproto.OFP_VERSION)
        if dp.ofproto.OFP_VERSION >= ofproto_v1_3.OFP_VERSION:
            # OpenFlow 1.3 drops table misses: ask for them explicitly, in full.
            ofp, parser = dp.ofproto, dp.ofproto_parser
            actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
            self._flow_mod(dp, parser.OFPMatch(), actions, priority=0, idle=0, hard=0)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def on_packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        v13 = ofp.OFP_VERSION >= ofproto_v1_3.OFP_VERSION
        in_port = msg.match["in_port"] if v13 else msg.in_port
        frame = msg.data
        if len(frame) < 14:
            return
        # Learning and flooding need only the Ethernet header: most packet-ins in a
        # larger lab are flooded broadcasts, so the full parse waits for a flow.
        dst, src = _mac_text(frame[0:6]), _mac_text(frame[6:12])
        if int.from_bytes(frame[12:14], "big") == ether_types.ETH_TYPE_LLDP:
            return
        table = self.mac_to_port.setdefault(dp.id, {})
        table[src] = in_port

        if frame[0] & 1 or dst not in table:
            self._packet_out(dp, msg, in_port, ofp.OFPP_FLOOD)
            return
        out_port = table[dst]
        pkt = packet.Packet(frame)
        match = exact_match_v13(parser, pkt, in_port) if v13 else exact_match_v10(parser, pkt, in_port)
        if out_port == in_port:
            self.logger.warning("same port for %s -> %s on %s; dropping", src, dst, in_port)
            self._flow_mod(dp, match, [], idle=IDLE_TIMEOUT, hard=IDLE_TIMEOUT, buffer_id=msg.buffer_id)
            return
        self.logger.info("installing flow for %s.%d -> %s.%d", src, in_port, dst, out_port)
        actions = [parser.OFPActionOutput(out_port)]
        self._flow_mod(dp, match, actions, idle=IDLE_TIMEOUT, hard=HARD_TIMEOUT, buffer_id=msg.buffer_id)
        if msg.buffer_id == ofp.OFP_NO_BUFFER:
            self._packet_out(dp, msg, in_port, out_port)

    def _flow_mod(self, dp, match, actions, *, idle, hard, priority=PRIORITY, buffer_id=None):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        buffer_id = ofp.OFP_NO_BUFFER if buffer_id is None else buffer_id
        # a flow that times out is reported (flow_removed); the table-miss flow never does
        flags = ofp.OFPFF_SEND_FLOW_REM if idle or hard else 0
        if ofp.OFP_VERSION >= ofproto_v1_3.OFP_VERSION:
            inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
            mod = parser.OFPFlowMod(
                datapath=dp,
                match=match,
                idle_timeout=idle,
                hard_timeout=hard,
                priority=priority,
                buffer_id=buffer_id,
                flags=flags,
                instructions=inst,
            )
        else:
            mod = parser.OFPFlowMod(
                datapath=dp,
                match=match,
                cookie=0,
                command=ofp.OFPFC_ADD,
                idle_timeout=idle,
                hard_timeout=hard,
                priority=priority,
                buffer_id=buffer_id,
                flags=flags,
                actions=actions,
            )
        dp.send_msg(mod)

    def _packet_out(self, dp, msg, in_port, out_port):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        out = parser.OFPPacketOut(
            datapath=dp,
            buffer_id=msg.buffer_id,
            in_port=in_port,
            actions=[parser.OFPActionOutput(out_port)],
            data=data,
        )
        dp.send_msg(out)
