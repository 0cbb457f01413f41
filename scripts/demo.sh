#!/usr/bin/env bash
# The main job: Palisade's whole pipeline, as far as it exists, on the
# embedded example policy and on a ClassBench benchmark set. Installs what
# it needs first. Leaves its files in ${PALISADE_DEMO_DIR:-target/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "==> building palisade (release)"
cargo build --release --locked --quiet
P=target/release/palisade
OUT=${PALISADE_DEMO_DIR:-target/demo}
mkdir -p "$OUT"

step() { echo; echo "==> $*"; }

step "the example policy (palisade example policy)"
$P example policy > "$OUT/edge.yaml"
cat "$OUT/edge.yaml"

step "check: validation, every error at once (palisade check)"
$P check "$OUT/edge.yaml"
$P check "$OUT/edge.yaml" --format json > "$OUT/check.json"
echo "(JSON report in $OUT/check.json)"

step "a broken edit is refused with file:line:column, rule id and fix"
sed -e 's/dst-port: 22$/dst-port: 22-2/' -e 's/protocol: icmpv6$/protocol: icmp6/' "$OUT/edge.yaml" > "$OUT/broken.yaml"
rc=0; $P check "$OUT/broken.yaml" || rc=$?
if [ "$rc" -ne 1 ]; then echo "unexpected: check exited $rc on a broken policy (want 1)"; exit 1; fi

step "policy as code: what an edit changes, packet by packet (palisade diff; exit 3 when verdicts change)"
sed -e 's/dst-port: 22$/dst-port: [22, 2222]/' "$OUT/edge.yaml" > "$OUT/edge-next.yaml"
rc=0; $P diff "$OUT/edge.yaml" "$OUT/edge-next.yaml" --witness-pcap "$OUT/diff-witnesses.pcap" || rc=$?
if [ "$rc" -ne 3 ]; then echo "unexpected: diff exited $rc on a change of verdicts (want 3)"; exit 1; fi
echo "(exit status 3: verdicts change). The witnesses through the reference evaluator, old policy then new:"
paste <($P eval "$OUT/edge.yaml" "$OUT/diff-witnesses.pcap" --output verdicts) \
      <($P eval "$OUT/edge-next.yaml" "$OUT/diff-witnesses.pcap" --output verdicts)

step "the normalised IR (palisade debug ir)"
$P debug ir "$OUT/edge.yaml"

step "example traffic (palisade example pcap)"
$P example pcap "$OUT/edge.pcap"

step "decisions of the reference evaluator (palisade eval --output verdicts)"
$P eval "$OUT/edge.yaml" "$OUT/edge.pcap" --output verdicts | nl -v0

step "per-rule counters (palisade eval --output summary)"
$P eval "$OUT/edge.yaml" "$OUT/edge.pcap" --output summary

CB=${PALISADE_CLASSBENCH_DIR:-../shared/data/classbench}
if [ -d "$CB" ]; then
  step "ClassBench fw1_1K imported as a policy (palisade import --from classbench), first rules"
  $P import --from classbench "$CB/fw1_1K" > "$OUT/fw1_1K.yaml"
  head -n 24 "$OUT/fw1_1K.yaml"
  $P check "$OUT/fw1_1K.yaml"

  step "acl1_10K: 97,100 trace lines against 9,710 rules, compared with the ground truth"
  start=$(date +%s%N)
  $P eval "$CB/acl1_10K" "$CB/acl1_10K_trace" --output matches > "$OUT/acl1_10K.matches"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  if cut -d' ' -f1 "$CB/acl1_10K_trace.firstmatch" | cmp -s - "$OUT/acl1_10K.matches"; then
    echo "all $(wc -l < "$OUT/acl1_10K.matches") first matches equal acl1_10K_trace.firstmatch (${ms} ms)"
  else
    echo "MISMATCH against acl1_10K_trace.firstmatch"; exit 1
  fi
else
  step "ClassBench steps skipped: no data in $CB (set PALISADE_CLASSBENCH_DIR)"
fi

step "TCAM entries for an mlx5-class NIC (palisade debug tcam), first lines"
$P debug tcam "$OUT/edge.yaml" --nic mlx5 | head -n 16

step "plan: what an mlx5-class NIC decides, what stays on the host and why (palisade plan)"
$P plan "$OUT/edge.yaml" --nic mlx5

step "the same traffic through the NIC stage then the host stage (palisade eval --engine tcam --nic mlx5)"
$P eval "$OUT/edge.yaml" "$OUT/edge.pcap" --engine tcam --nic mlx5 --output summary

step "compile: the NIC table, host tables and plan as files (palisade compile --nic ranges)"
$P compile "$OUT/edge.yaml" --nic ranges --out "$OUT/compiled"
$P plan "$OUT/edge.yaml" --nic ranges --format html --out "$OUT/plan.html"
echo "plan report for planners: $OUT/plan.html"

step "the NIC share as tc-flower filters: the tc -batch script apply would install (palisade apply --dry-run --nic mlx5)"
$P apply "$OUT/edge.yaml" --dev eth0 --nic mlx5 --dry-run | head -n 8

step "simulate: the same traffic through the simulated SmartNIC (rtl/ under Verilator, loaded with the flower filters apply would send) and the host stage (palisade sim --nic fpga)"
$P sim "$OUT/edge.yaml" --nic fpga --pcap "$OUT/edge.pcap" --write-passed "$OUT/edge-passed.pcap"
echo "frames the policy allows: $OUT/edge-passed.pcap"
step "the simulated pipeline as an FPGA: resources by the synthesis model, against an Artix-7 200T (palisade plan --nic fpga)"
$P plan "$OUT/edge.yaml" --nic fpga --fpga-part xc7a200t | sed -n '/FPGA resources/,$p'
if [ -d "$CB" ]; then
  step "acl1_1K's trace through the simulated NIC, compared line by line with the reference on the same frames (eval --engine sim)"
  $P eval "$CB/acl1_1K" "$CB/acl1_1K_trace" --engine sim --output verdicts > "$OUT/acl1_1K.sim"
  $P eval "$CB/acl1_1K" "$CB/acl1_1K_trace" --as-packets --output verdicts > "$OUT/acl1_1K.ref"
  if cmp -s "$OUT/acl1_1K.sim" "$OUT/acl1_1K.ref"; then
    echo "all $(wc -l < "$OUT/acl1_1K.sim") verdicts and rule ids of the simulated NIC + host equal the reference's"
  else
    echo "MISMATCH between eval --engine sim and the reference"; exit 1
  fi
fi

if [ "$(id -u)" -eq 0 ]; then
  step "the same traffic through the XDP program in this kernel (palisade eval --engine xdp; BPF_PROG_TEST_RUN)"
  $P eval "$OUT/edge.yaml" "$OUT/edge.pcap" --engine xdp --output summary

  step "apply: the XDP program on a veth in a network namespace, traffic sent from its peer"
  NS=palisade-demo-$$
  cleanup() {
    nsenter --net=/run/netns/$NS-d $P detach --dev pdemo0 >/dev/null 2>&1 || true
    ip netns del $NS-d 2>/dev/null || true; ip netns del $NS-p 2>/dev/null || true
  }
  trap cleanup EXIT
  ip netns add $NS-d; ip netns add $NS-p
  ip link add pdemo0 netns $NS-d type veth peer name pdemo1 netns $NS-p
  for side in "d pdemo0" "p pdemo1"; do
    set -- $side
    ip netns exec $NS-$1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.$2.disable_ipv6=1
    ip -n $NS-$1 link set $2 up
  done
  in_ns() { nsenter --net=/run/netns/$NS-d "$@"; }
  in_ns $P apply "$OUT/edge.yaml" --dev pdemo0
  in_ns $P status --dev pdemo0
  ip netns exec $NS-p tcpreplay -q -i pdemo1 "$OUT/edge.pcap" 2>&1 | grep -i "actual" || true
  step "per-rule counters read back from the pins by a new process (palisade stats)"
  sleep 0.2
  in_ns $P stats --dev pdemo0
  step "sampled decisions of rules with log: (palisade log, JSON lines)"
  in_ns $P log --dev pdemo0 --timeout 0.5
  step "emergency blocklist: a source dropped before the policy (palisade block)"
  in_ns $P block add --dev pdemo0 203.0.113.0/24
  in_ns $P block list --dev pdemo0
  step "a new generation swapped in atomically, with the mlx5 NIC stage asked for (palisade apply --nic mlx5), then detach"
  # With cls_flower, a veth refuses every skip_sw filter and XDP decides all;
  # without it, apply says so in one line. Either way traffic stays filtered.
  in_ns $P apply "$OUT/edge.yaml" --dev pdemo0 --nic mlx5
  in_ns $P detach --dev pdemo0

  step "the agent: the policy from a directory (as a ConfigMap or git checkout), metrics, an edit, a broken edit (palisade agent)"
  AG="$OUT/agent"; rm -rf "$AG"; mkdir -p "$AG/policy"
  cp "$OUT/edge.yaml" "$AG/policy/policy.yaml"
  cat > "$AG/agent.toml" <<TOML
[policy]
path = "policy"
poll_interval = "200ms"
[[interfaces]]
name = "pdemo0"
nic = "none"
[reconcile]
interval = "2s"
[metrics]
listen = "127.0.0.1:9477"
top_k = 5
[log]
format = "json"
audit = "audit.jsonl"
TOML
  ip -n $NS-d link set lo up
  nsenter --net=/run/netns/$NS-d $P agent --config "$AG/agent.toml" 2> "$AG/agent.log" &
  AGENT=$!
  trap 'kill $AGENT 2>/dev/null || true; cleanup' EXIT
  for _ in $(seq 50); do in_ns curl -sf 127.0.0.1:9477/healthz >/dev/null && break; sleep 0.2; done
  ip netns exec $NS-p tcpreplay -q -i pdemo1 "$OUT/edge.pcap" >/dev/null 2>&1 || true
  sleep 0.3
  echo "GET /metrics (excerpt):"
  in_ns curl -s 127.0.0.1:9477/metrics | grep -E '^palisade_(rule_packets|packets|deployments|generation|interface_in_sync|policy_valid)' | head -20
  echo; echo "an edit: ssh from the office is now denied too"
  cp "$OUT/edge.yaml" "$AG/policy/.next"
  python3 - "$AG/policy/.next" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
i = s.index("id: ssh-office")
j = s.index("action: allow", i)
open(p, "w").write(s[:j] + "action: deny" + s[j + len("action: allow"):])
PY
  mv "$AG/policy/.next" "$AG/policy/policy.yaml"
  sleep 1
  tail -n 1 "$AG/audit.jsonl"
  echo; echo "a broken edit: refused, the policy in force stays, /metrics says where"
  sed 's/protocol: tcp/protocol: tcpp/' "$AG/policy/policy.yaml" > "$AG/policy/.next" && mv "$AG/policy/.next" "$AG/policy/policy.yaml"
  sleep 1
  in_ns curl -s 127.0.0.1:9477/metrics | grep -E '^palisade_policy_(valid|error_info)'
  in_ns $P status --dev pdemo0 | head -2
  kill $AGENT; wait $AGENT 2>/dev/null || true
  trap cleanup EXIT
  echo "agent stopped; enforcement stays until detach:"
  in_ns $P status --dev pdemo0 | head -1
  in_ns $P detach --dev pdemo0

  if [ -d "$CB" ]; then
    step "XDP cost per packet on acl1_10K, kernel-measured (palisade bench xdp)"
    $P bench xdp "$CB/acl1_10K" "$CB/acl1_10K_trace" --frames 200 --repeat 500
  fi
else
  step "XDP steps skipped: loading XDP programs needs root"
fi

