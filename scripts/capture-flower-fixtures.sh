#!/usr/bin/env bash
# Captures the exact netlink requests iproute2's `tc` sends for a list of
# flower filters, as fixtures for offload's encoder and decoder tests
# (testdata/flower/*.fixture). tc sends the request before the kernel
# answers, so this works on kernels without cls_flower too (the request is
# then refused, which does not matter here).
#
# Each fixture holds the tc command (after "# tc "), then the request as
# hex, 16 bytes a line. Run as root; needs tc (iproute2) and strace.
# PALISADE_FIXTURE_OUT=DIR writes elsewhere (the tests capture afresh and
# compare).
# Fields that legitimately differ between runs are normalised by the tests,
# not here: see offload/tests/fixtures.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${PALISADE_FIXTURE_OUT:-testdata/flower}
NS=palisade-fixtures-$$
mkdir -p "$OUT"
command -v strace >/dev/null || { echo "capture: strace is needed (apt-get install strace)" >&2; exit 2; }

ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link add v0 type veth peer name v1
ip -n "$NS" link set v0 up
ip netns exec "$NS" tc qdisc add dev v0 clsact

capture() {
  local name=$1; shift
  local trace
  trace=$(mktemp)
  ip netns exec "$NS" strace -qq -e trace=sendmsg -e write=all -o "$trace" tc "$@" >/dev/null 2>&1 || true
  {
    echo "# tc $*"
    # The first request (RTM_NEWTFILTER): strace's hex dump, bytes only.
    # Columns 11-58 of each dump line hold the 16 bytes.
    awk '/^ \* [0-9]+ bytes in buffer/ { n++ } n == 1 && /^ \| [0-9a-f]/ { print }' "$trace" |
      cut -c11-58 | tr -s ' ' | sed 's/^ //; s/ $//'
  } > "$OUT/$name.fixture"
  rm -f "$trace"
  echo "capture: $name ($(grep -v '^#' "$OUT/$name.fixture" | wc -w) bytes)"
}

F="filter add dev v0 ingress"
capture 01-ipv4-dst-drop          $F protocol ip prio 1 flower skip_hw dst_ip 10.0.0.0/8 action drop
capture 02-ipv4-src-dst-pass      $F protocol ip prio 2 flower skip_hw src_ip 192.0.2.0/24 dst_ip 198.51.100.7 action pass
capture 03-tcp-dst-port           $F protocol ip prio 3 flower skip_hw ip_proto tcp dst_port 443 action drop
capture 04-udp-src-port           $F protocol ip prio 4 flower skip_hw ip_proto udp src_port 53 action pass
capture 05-sctp-ports             $F protocol ip prio 5 flower skip_hw ip_proto sctp src_port 1000 dst_port 2000 action drop
capture 06-tcp-port-range         $F protocol ip prio 6 flower skip_hw ip_proto tcp dst_port 1000-2000 action drop
capture 07-udp-src-port-range     $F protocol ip prio 7 flower skip_hw ip_proto udp src_port 1024-65535 action pass
capture 08-tcp-flags              $F protocol ip prio 8 flower skip_hw ip_proto tcp tcp_flags 0x02/0x12 action drop
capture 09-icmp-type-code         $F protocol ip prio 9 flower skip_hw ip_proto icmp type 8 code 0 action drop
capture 10-icmpv6-type            $F protocol ipv6 prio 10 flower skip_hw ip_proto icmpv6 type 135 action pass
capture 11-ipv6-src-dst           $F protocol ipv6 prio 11 flower skip_hw src_ip 2001:db8::/32 dst_ip 2001:db8:1::1 action drop
capture 12-ipv6-tcp-port          $F protocol ipv6 prio 12 flower skip_hw ip_proto tcp dst_port 22 action pass
capture 13-frag-pass              $F protocol ip prio 13 flower skip_hw ip_flags frag action pass
capture 14-firstfrag              $F protocol ip prio 14 flower skip_hw ip_flags frag/firstfrag action pass
capture 15-nofrag-drop            $F protocol ip prio 15 flower skip_hw ip_flags nofrag ip_proto udp dst_port 9 action drop
capture 16-tos-dscp               $F protocol ip prio 16 flower skip_hw ip_tos 0xb8/0xfc action pass
capture 17-vlan-id                $F protocol 802.1q prio 17 flower skip_hw vlan_id 100 vlan_ethtype ip dst_ip 10.1.0.0/16 action drop
capture 18-skip-sw                $F protocol ip prio 18 flower skip_sw dst_ip 203.0.113.0/24 action drop
capture 19-chain                  $F protocol ip chain 1 prio 19 flower skip_hw dst_ip 10.0.0.1 action drop
capture 20-goto-chain             $F protocol all prio 20 flower skip_hw action goto chain 1
capture 21-police-bps-index       $F protocol ip prio 21 flower skip_hw ip_proto udp action police index 7 rate 1mbit burst 10k conform-exceed drop/pass
capture 22-police-pps             $F protocol ip prio 22 flower skip_hw ip_proto icmp action police pkts_rate 100 pkts_burst 20 conform-exceed drop/pass
capture 23-ip-proto-number        $F protocol ip prio 23 flower skip_hw ip_proto 47 action drop
capture 24-catch-all-drop         $F protocol all prio 65535 flower skip_hw action drop
capture 25-ipv6-flags-frag        $F protocol ipv6 prio 25 flower skip_hw ip_flags frag action pass
capture 26-tcp-port-mask          $F protocol ip prio 26 flower skip_hw ip_proto tcp src_port 1024/0xfc00 dst_port 80/0xfff0 action drop
capture 27-ipv6-udp-port-mask     $F protocol ipv6 prio 27 flower skip_hw ip_proto udp dst_port 4096/0xf000 action pass
capture 28-vlan-ipv6             $F protocol 802.1q prio 28 flower skip_hw vlan_id 7 vlan_ethtype ipv6 ip_proto tcp dst_port 22 action drop
