`default_nettype none
// palisade_action: the action stage of Palisade's SmartNIC match pipeline.
//
// Takes the TCAM's result for each packet and decides what the NIC does
// with it (DESIGN §4: the NIC finally decides only deny and rate-limit):
//
//   - no IP key, no matching entry, or an entry that hands packets to the
//     host: pass to the host, which decides;
//   - an entry of a drop rule: drop;
//   - an entry of a police rule: take the packet from the rule's token
//     bucket; pass it to the host if it conforms (the host allows it as
//     the rule's), drop it if not.
//
// Each entry names its rule; the entries of one rule share its bucket and
// its counters (DESIGN §1: one bucket per rule). The bucket is the
// reference evaluator's, bit for bit (compiler/src/eval.rs, Bucket): tokens
// in units x 10^9, refilled by rate x the nanoseconds since the last
// packet that advanced the clock, capped at the capacity, a packet costing
// 10^9 (packets per second) or its frame length x 8 x 10^9 (bits per
// second). Time is the packet's arrival timestamp in nanoseconds, carried
// with it from the MAC, so a packet is metered by when it arrived, not by
// when the pipeline reached it.
//
// Entries, rules and counters live in two banks, written and read by bank
// like the TCAM's entries; a rule's configuration write fills its bucket
// and clears its counters (a policy starts with full buckets). Counters per
// rule: packets and bytes the rule's entries decided, packets it dropped.
//
// One packet per clock; a packet's bucket update completes on its clock,
// so back-to-back packets of one rule see each other's updates. The
// verdict is registered (out_valid one cycle after in_valid).
//
// Parameters are checked at elaboration (an out-of-range value stops it).
module palisade_action #(
    // TCAM entries per bank; 1 to 65536.
    parameter integer N = 64,
    // Rules per bank; 1 to 65536.
    parameter integer RULES = 64,
    // Bits of an entry index and of a rule index; derived, do not set.
    parameter integer IW = (N > 1) ? $clog2(N) : 1,
    parameter integer RW = (RULES > 1) ? $clog2(RULES) : 1
) (
    input  wire           clk,
    input  wire           rst,
    // Configuration, of bank cfg_bank: entry cfg_entry_index belongs to
    // rule cfg_entry_rule, and decides (its rule's action) or hands the
    // packet to the host.
    input  wire           cfg_bank,
    input  wire           cfg_entry_we,
    input  wire [IW-1:0]  cfg_entry_index,
    input  wire [RW-1:0]  cfg_entry_rule,
    input  wire           cfg_entry_decides,
    // Rule cfg_rule_index: action 0 pass to host, 1 drop, 2 police; a
    // police rule's rate (per second) and bucket capacity (units x 10^9),
    // in bits (cfg_rule_bits) or packets.
    input  wire           cfg_rule_we,
    input  wire [RW-1:0]  cfg_rule_index,
    input  wire [1:0]     cfg_rule_action,
    input  wire           cfg_rule_bits,
    input  wire [63:0]    cfg_rule_rate,
    input  wire [127:0]   cfg_rule_capacity,
    // Counter read: rule rd_rule of bank rd_bank, on the next clock.
    input  wire           rd_en,
    input  wire           rd_bank,
    input  wire [RW-1:0]  rd_rule,
    output reg  [63:0]    rd_packets,
    output reg  [63:0]    rd_bytes,
    output reg  [63:0]    rd_drops,
    // The TCAM's result for one packet.
    input  wire           in_valid,
    input  wire           in_bank,
    input  wire           in_hit,
    input  wire [IW-1:0]  in_index,
    input  wire [31:0]    in_len,
    input  wire [63:0]    in_ts,
    // The verdict: 0 pass to host, 1 dropped by a drop rule, 2 passed by a
    // police rule (conforming), 3 dropped by a police rule; the rule whose
    // entry decided, if one did.
    output reg            out_valid,
    output reg  [1:0]     out_verdict,
    output reg            out_decided,
    output reg  [RW-1:0]  out_rule
);

    initial begin
        if (N < 1 || N > 65536) begin
            $display("palisade_action: N = %0d is outside 1..65536", N);
            $finish;
        end
        if (RULES < 1 || RULES > 65536) begin
            $display("palisade_action: RULES = %0d is outside 1..65536", RULES);
            $finish;
        end
    end

    // Rule actions (0 is pass to host).
    localparam [1:0] A_DROP = 2'd1;
    localparam [1:0] A_POLICE = 2'd2;
    localparam [1:0] V_HOST = 2'd0;
    localparam [1:0] V_DROP = 2'd1;
    localparam [1:0] V_POLICE_PASS = 2'd2;
    localparam [1:0] V_POLICE_DROP = 2'd3;
    // 10^9: a bucket unit.
    localparam [127:0] NS = 128'd1000000000;

    // Bank b's entry i at {b, i}, rule r at {b, r}.
    localparam integer ESLOTS = 2 << IW;
    localparam integer RSLOTS = 2 << RW;
    reg [RW-1:0]  entry_rule [0:ESLOTS-1];
    reg           entry_decides [0:ESLOTS-1];
    reg [1:0]     rule_action [0:RSLOTS-1];
    reg           rule_bits [0:RSLOTS-1];
    reg [63:0]    rule_rate [0:RSLOTS-1];
    reg [127:0]   rule_capacity [0:RSLOTS-1];
    reg [127:0]   tokens [0:RSLOTS-1];
    reg [63:0]    last [0:RSLOTS-1];
    reg           has_last [0:RSLOTS-1];
    reg [63:0]    packets [0:RSLOTS-1];
    reg [63:0]    bytes [0:RSLOTS-1];
    reg [63:0]    drops [0:RSLOTS-1];

    // The packet's rule and bucket arithmetic: temporaries of the clocked
    // block below, assigned with `=` on purpose.
    reg [RW:0]    r;
    reg           decides;
    reg [1:0]     act;
    reg [128:0]   sum;
    reg [127:0]   level;
    reg [127:0]   cost;
    reg           conform;
    reg [1:0]     verdict;

    /* verilator lint_off BLKSEQ */
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            out_verdict <= V_HOST;
            out_decided <= 1'b0;
            out_rule <= {RW{1'b0}};
        end else begin
            out_valid <= in_valid;
            if (in_valid) begin
                r = {in_bank, entry_rule[{in_bank, in_index}]};
                decides = in_hit && entry_decides[{in_bank, in_index}];
                act = rule_action[r];
                verdict = V_HOST;
                if (decides && act == A_DROP) begin
                    verdict = V_DROP;
                end else if (decides && act == A_POLICE) begin
                    level = tokens[r];
                    if (!has_last[r]) begin
                        last[r] <= in_ts;
                        has_last[r] <= 1'b1;
                    end else if (in_ts > last[r]) begin
                        sum = {1'b0, level} + {1'b0, {64'd0, in_ts - last[r]} * {64'd0, rule_rate[r]}};
                        level = (sum > {1'b0, rule_capacity[r]}) ? rule_capacity[r] : sum[127:0];
                        last[r] <= in_ts;
                    end
                    cost = rule_bits[r] ? {96'd0, in_len} * 128'd8 * NS : NS;
                    conform = level >= cost;
                    tokens[r] <= conform ? level - cost : level;
                    verdict = conform ? V_POLICE_PASS : V_POLICE_DROP;
                end
                if (decides) begin
                    packets[r] <= packets[r] + 64'd1;
                    bytes[r] <= bytes[r] + {32'd0, in_len};
                    if (verdict == V_DROP || verdict == V_POLICE_DROP) drops[r] <= drops[r] + 64'd1;
                end
                out_verdict <= verdict;
                out_decided <= decides;
                out_rule <= r[RW-1:0];
            end
            // Configuration writes go to the bank no packet uses.
            if (cfg_entry_we) begin
                entry_rule[{cfg_bank, cfg_entry_index}] <= cfg_entry_rule;
                entry_decides[{cfg_bank, cfg_entry_index}] <= cfg_entry_decides;
            end
            if (cfg_rule_we) begin
                rule_action[{cfg_bank, cfg_rule_index}] <= cfg_rule_action;
                rule_bits[{cfg_bank, cfg_rule_index}] <= cfg_rule_bits;
                rule_rate[{cfg_bank, cfg_rule_index}] <= cfg_rule_rate;
                rule_capacity[{cfg_bank, cfg_rule_index}] <= cfg_rule_capacity;
                tokens[{cfg_bank, cfg_rule_index}] <= cfg_rule_capacity;
                has_last[{cfg_bank, cfg_rule_index}] <= 1'b0;
                last[{cfg_bank, cfg_rule_index}] <= 64'd0;
                packets[{cfg_bank, cfg_rule_index}] <= 64'd0;
                bytes[{cfg_bank, cfg_rule_index}] <= 64'd0;
                drops[{cfg_bank, cfg_rule_index}] <= 64'd0;
            end
        end
    end
    /* verilator lint_on BLKSEQ */

    always @(posedge clk) begin
        if (rd_en) begin
            rd_packets <= packets[{rd_bank, rd_rule}];
            rd_bytes <= bytes[{rd_bank, rd_rule}];
            rd_drops <= drops[{rd_bank, rd_rule}];
        end
    end

endmodule

`default_nettype wire
