#!/usr/bin/env bash
# The classic part-2 exercise, start to finish, with one command:
#   bring up the 2-host lab, capture the controller channel, ping once from
#   VM1 to VM2, read the OpenFlow sequence that made the ping work (ARP request
#   packet-in -> flood packet-out; ARP reply packet-in -> flow-mod; ICMP echo
#   request packet-in -> flow-mod), then the port map, the flows and the
#   counters; then watch the flows leave after their 10 s idle timeout, live
#   (trace --follow) -- and remove the lab again.
#
#   bash playbooks/part2-walkthrough.sh [-i INVENTORY]     (as root)
#
# Set LABCTL to another labctl (default: the clone's .venv when run from a clone,
# else the labctl on PATH), KEEP=1 to keep the lab up afterwards, PCAP to keep the
# capture somewhere else.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"  # the clone, through its playbooks/ link
default=labctl
[ -x "$here/.venv/bin/labctl" ] && default="$here/.venv/bin/labctl"
read -r -a labctl <<<"${LABCTL:-$default}"  # may be a command with arguments
pcap="${PCAP:-$(mktemp -d)/part2-openflow.pcap}"
step() { printf '\n==== %s\n' "$*"; }

cleanup() { [ "${KEEP:-0}" = 1 ] || "${labctl[@]}" down -q "$@" >/dev/null; }
trap 'cleanup "$@"' EXIT

step "1. bring up the lab: two hosts, GRE between them, one controller"
"${labctl[@]}" up -q "$@"
"${labctl[@]}" status "$@"

step "2. capture the OpenFlow channel, ping VM1 -> VM2 once"
"${labctl[@]}" capture start -o "$pcap" "$@"
"${labctl[@]}" exec "$@" vm1 -- ping -c 1 -W 2 172.16.0.2
"${labctl[@]}" capture stop "$@"

step "3. what the controller did (packet-in, packet-out, flow-mod), in the lab's names"
"${labctl[@]}" trace --pcap "$pcap" "$@"

step "4. the port map: OpenFlow and datapath numbers, what is behind each port"
"${labctl[@]}" ports --stats "$@"

step "5. the flows the controller installed, and what the datapath cached"
"${labctl[@]}" flows "$@"
"${labctl[@]}" flows --datapath "$@"

step "6. the flows leave after 10 s idle: each flow_removed, live, as the controller hears it"
"${labctl[@]}" trace --follow --type flow_removed "$@" &
follow=$!
for _ in $(seq 30); do  # until host1 has no ICMP flow left (at most 30 s)
  flows="$("${labctl[@]}" exec "$@" host1 -- ovs-ofctl dump-flows br0)"
  [[ "$flows" == *icmp* ]] || break
  sleep 1
done
sleep 1  # the last flow_removed reaches the controller right after the flow is gone
kill -TERM "$follow"  # ends the follow as Ctrl-C does (a background job ignores SIGINT)
wait "$follow"

step "done: the capture is in $pcap (open it in Wireshark: decode as OpenFlow)"
