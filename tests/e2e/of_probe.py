"""An os-ken app for the tests: when a switch connects, it asks it every question the
trace decodes, so one capture holds every OpenFlow message type the lab can see.

Run beside l2_learning (`apps: [l2_learning, tests.e2e.of_probe]`). Per switch, once:
set_config, get_config, echo (with data), role, every stats/multipart request OVS
answers compactly, a message OVS refuses (an error comes back), three flows that
leave for each reason (idle timeout, hard timeout, delete) with flow_removed
requested, and last a barrier -- its reply says the switch answered all of it.
"""

from __future__ import annotations

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import nicira_ext, ofproto_v1_0, ofproto_v1_3

PROBE_PRIORITY = 7  # below l2_learning's flows, above the table-miss flow
PROBE_COOKIE = 0x1AB


class OpenFlowProbe(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_0.OFP_VERSION, ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPStateChange, MAIN_DISPATCHER)
    def on_main(self, ev):
        dp = ev.datapath
        v13 = dp.ofproto.OFP_VERSION >= ofproto_v1_3.OFP_VERSION
        (self._ask_v13 if v13 else self._ask_v10)(dp)

    def _ask_v10(self, dp):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        send = dp.send_msg
        send(parser.OFPSetConfig(dp, ofp.OFPC_FRAG_NORMAL, 0xFFFF))
        send(parser.OFPGetConfigRequest(dp))
        send(parser.OFPEchoRequest(dp, data=b"labctl"))
        send(parser.NXTRoleRequest(dp, nicira_ext.NX_ROLE_OTHER))
        send(parser.OFPDescStatsRequest(dp, 0))
        match_all = parser.OFPMatch()
        send(parser.OFPFlowStatsRequest(dp, 0, match_all, 0xFF, ofp.OFPP_NONE))
        send(parser.OFPAggregateStatsRequest(dp, 0, match_all, 0xFF, ofp.OFPP_NONE))
        send(parser.OFPTableStatsRequest(dp, 0))
        send(parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_NONE))
        send(parser.OFPQueueStatsRequest(dp, 0, ofp.OFPP_ALL, ofp.OFPQ_ALL))
        # a flow-mod command OpenFlow 1.0 does not have: flow_mod_failed/bad_command
        send(parser.OFPFlowMod(dp, match=match_all, cookie=0, command=7, actions=[]))
        for dl_type, idle, hard in ((0x88B5, 1, 0), (0x88B6, 0, 1), (0x88B7, 0, 0)):
            send(
                parser.OFPFlowMod(
                    dp,
                    match=parser.OFPMatch(dl_type=dl_type),
                    cookie=PROBE_COOKIE,
                    command=ofp.OFPFC_ADD,
                    idle_timeout=idle,
                    hard_timeout=hard,
                    priority=PROBE_PRIORITY,
                    flags=ofp.OFPFF_SEND_FLOW_REM,
                    actions=[],
                )
            )
        send(
            parser.OFPFlowMod(
                dp,
                match=parser.OFPMatch(dl_type=0x88B7),
                cookie=0,
                command=ofp.OFPFC_DELETE_STRICT,
                idle_timeout=0,
                hard_timeout=0,
                priority=PROBE_PRIORITY,
                actions=[],
            )
        )
        send(parser.OFPBarrierRequest(dp))

    def _ask_v13(self, dp):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        send = dp.send_msg
        send(parser.OFPSetConfig(dp, ofp.OFPC_FRAG_NORMAL, ofp.OFPCML_NO_BUFFER))
        send(parser.OFPGetConfigRequest(dp))
        send(parser.OFPEchoRequest(dp, data=b"labctl"))
        send(parser.OFPRoleRequest(dp, ofp.OFPCR_ROLE_NOCHANGE, 0))
        send(parser.OFPDescStatsRequest(dp, 0))
        send(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY))
        send(
            parser.OFPAggregateStatsRequest(
                dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch()
            )
        )
        send(parser.OFPTableStatsRequest(dp, 0))
        send(parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY))
        send(parser.OFPQueueStatsRequest(dp, 0, ofp.OFPP_ANY, ofp.OFPQ_ALL))
        send(parser.OFPGroupDescStatsRequest(dp, 0))
        send(parser.OFPGroupFeaturesStatsRequest(dp, 0))
        send(parser.OFPMeterFeaturesStatsRequest(dp, 0))
        # a flow-mod into a table that does not exist: flow_mod_failed/bad_table_id
        send(
            parser.OFPFlowMod(
                dp, table_id=ofp.OFPTT_ALL, match=parser.OFPMatch(), instructions=[], priority=1
            )
        )
        for eth_type, idle, hard in ((0x88B5, 1, 0), (0x88B6, 0, 1), (0x88B7, 0, 0)):
            send(
                parser.OFPFlowMod(
                    dp,
                    cookie=PROBE_COOKIE,
                    match=parser.OFPMatch(eth_type=eth_type),
                    idle_timeout=idle,
                    hard_timeout=hard,
                    priority=PROBE_PRIORITY,
                    flags=ofp.OFPFF_SEND_FLOW_REM,
                    instructions=[],
                )
            )
        send(
            parser.OFPFlowMod(
                dp,
                command=ofp.OFPFC_DELETE_STRICT,
                match=parser.OFPMatch(eth_type=0x88B7),
                priority=PROBE_PRIORITY,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
                instructions=[],
            )
        )
        send(parser.OFPBarrierRequest(dp))
