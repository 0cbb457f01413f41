`default_nettype none
// palisade_pipeline: Palisade's SmartNIC match pipeline, the top level.
//
//   frames -> palisade_parser -> palisade_ranges -> palisade_tcam
//          -> palisade_action -> one verdict per frame
//
// Frames come in as an AXI-Stream-like byte stream (see palisade_parser.v)
// whose tuser carries the frame's arrival time in nanoseconds (a MAC's
// timestamp). For each frame one verdict leaves on m_*, in frame order,
// four clocks after the parser's result: pass to host, drop, or police
// (pass or drop), with the matching entry and the rule whose entry decided.
// Non-IP and malformed frames match no entry and go to the host.
//
// Configuration is a 32-bit register bus (reg_*): a read returns its data
// on reg_rdata the clock after. The commit register is the pipeline's
// only bank select: writes go to the bank packets do not use, each packet
// takes the active bank as it enters the range checkers and keeps it
// through the TCAM and the action stage, and a commit flips the bank
// between two packets, so a whole policy (entries, checkers, rules,
// buckets, counters) changes atomically. After a commit the driver waits
// for BUSY to clear before writing the bank it left.
//
// Registers (word addresses):
//   0x000 ID (reads 0x50414c53)       0x001 N        0x002 RULES
//   0x003 R                           0x004 W        0x005 DATA_W
//   0x010 BANK: reads the active bank; a write commits (flips it)
//   0x011 BUSY: 1 while packets of the inactive bank are in flight
//   0x100 + i  entry value word i (bits 32i .. 32i+31 of the key)
//   0x120 + i  entry mask word i
//   0x140      entry rule
//   0x141      write entry: [31] valid, [30] decides (else hands the packet
//              to the host), [15:0] index; value, mask and rule as staged
//   0x150/0x151  rule rate, low and high word (per second)
//   0x152-0x155  rule bucket capacity in units x 10^9, low word first
//   0x156      write rule: [31:30] action (0 pass, 1 drop, 2 police),
//              [29] rate in bits per second, [15:0] index; fills its bucket
//              and clears its counters
//   0x160      checker range: [31:16] hi, [15:0] lo
//   0x161      write checker: [31] enable, [30] destination port, [3:0] index
//   0x170      counter select: [31] bank, [15:0] rule; the next reads of
//              0x171-0x176 return its packets, bytes and drops (low word
//              first), as they were on the clock after the select
//
// Parameters are checked at elaboration (an out-of-range value stops it).
module palisade_pipeline #(
    // Stream data width in bits: a multiple of 8, 64 to 4096.
    parameter integer DATA_W = 512,
    // TCAM entries per bank; 1 to 65536.
    parameter integer N = 1024,
    // Rules per bank; 1 to 65536.
    parameter integer RULES = 1024,
    // Port range checkers; 1 to 16.
    parameter integer R = 8,
    // Derived, do not set: byte lanes, key width, index widths, key words.
    parameter integer KEEP_W = DATA_W / 8,
    parameter integer W = 345 + R,
    parameter integer IW = (N > 1) ? $clog2(N) : 1,
    parameter integer RW = (RULES > 1) ? $clog2(RULES) : 1,
    parameter integer KW = (W + 31) / 32
) (
    input  wire              clk,
    input  wire              rst,
    // Frames in; tuser is the arrival time in nanoseconds.
    input  wire [DATA_W-1:0] s_axis_tdata,
    input  wire [KEEP_W-1:0] s_axis_tkeep,
    input  wire              s_axis_tvalid,
    output wire              s_axis_tready,
    input  wire              s_axis_tlast,
    input  wire [63:0]       s_axis_tuser,
    // One verdict per frame: 0 pass to host, 1 drop, 2 police pass,
    // 3 police drop; the entry that matched (m_hit), the rule whose entry
    // decided (m_decided), the parser's class, the frame length and time,
    // and the bank that decided it.
    output reg               m_valid,
    output reg  [1:0]        m_verdict,
    output reg               m_hit,
    output reg  [IW-1:0]     m_entry,
    output reg               m_decided,
    output reg  [RW-1:0]     m_rule,
    output reg  [4:0]        m_class,
    output reg  [31:0]       m_len,
    output reg  [63:0]       m_ts,
    output reg               m_bank,
    // Register bus.
    input  wire              reg_valid,
    input  wire              reg_write,
    input  wire [11:0]       reg_addr,
    input  wire [31:0]       reg_wdata,
    output reg  [31:0]       reg_rdata
);

    initial begin
        if (R < 1 || R > 16) begin
            $display("palisade_pipeline: R = %0d is outside 1..16", R);
            $finish;
        end
        if (N > 65536 || RULES > 65536) begin
            $display("palisade_pipeline: N and RULES are at most 65536");
            $finish;
        end
    end

    // ---- Parser ------------------------------------------------------------
    wire          p_valid;
    wire [4:0]    p_class;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [15:0]   p_ethertype;          // the host reads the frame itself
    /* verilator lint_on UNUSEDSIGNAL */
    wire [344:0]  p_key;
    wire [31:0]   p_len;
    wire [63:0]   p_ts;

    palisade_parser #(
        .DATA_W(DATA_W),
        .USER_W(64)
    ) parser (
        .clk(clk),
        .rst(rst),
        .s_axis_tdata(s_axis_tdata),
        .s_axis_tkeep(s_axis_tkeep),
        .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready),
        .s_axis_tlast(s_axis_tlast),
        .s_axis_tuser(s_axis_tuser),
        .m_valid(p_valid),
        .m_ready(1'b1),
        .m_class(p_class),
        .m_ethertype(p_ethertype),
        .m_key(p_key),
        .m_len(p_len),
        .m_user(p_ts)
    );

    // ---- Configuration registers ---------------------------------------------
    reg              active_bank;
    wire             inactive = ~active_bank;
    // The staged key words; bits above W are ignored.
    /* verilator lint_off UNUSEDSIGNAL */
    reg [32*KW-1:0]  stage_value;
    reg [32*KW-1:0]  stage_mask;
    /* verilator lint_on UNUSEDSIGNAL */
    reg [RW-1:0]     stage_rule;
    reg [63:0]       stage_rate;
    reg [127:0]      stage_capacity;
    reg [31:0]       stage_range;

    wire wr = reg_valid && reg_write;
    wire entry_we = wr && reg_addr == 12'h141;
    wire rule_we = wr && reg_addr == 12'h156;
    wire checker_we = wr && reg_addr == 12'h161;
    wire counter_sel = wr && reg_addr == 12'h170;

    // Key word registers: 0x100-0x11f values, 0x120-0x13f masks.
    wire [4:0] word = reg_addr[4:0];
    wire word_ok = {27'd0, word} < KW;

    // ---- Stage 1: range checkers (the packet takes its bank here) ---------------
    reg          s1_valid, s1_bank, s1_ip;
    reg [4:0]    s1_class;
    reg [31:0]   s1_len;
    reg [63:0]   s1_ts;
    wire         r_valid;
    wire [W-1:0] r_key;

    palisade_ranges #(.R(R)) ranges (
        .clk(clk),
        .rst(rst),
        .cfg_we(checker_we),
        .cfg_bank(inactive),
        .cfg_index(reg_wdata[3:0]),
        .cfg_enable(reg_wdata[31]),
        .cfg_dst(reg_wdata[30]),
        .cfg_lo(stage_range[15:0]),
        .cfg_hi(stage_range[31:16]),
        .in_valid(p_valid),
        .in_bank(active_bank),
        .in_key(p_key),
        .out_valid(r_valid),
        .out_key(r_key)
    );

    // ---- Stage 2: TCAM ----------------------------------------------------------
    reg          s2_valid, s2_bank, s2_ip;
    reg [4:0]    s2_class;
    reg [31:0]   s2_len;
    reg [63:0]   s2_ts;
    wire         t_valid, t_hit;
    wire [IW-1:0] t_index;

    palisade_tcam #(.N(N), .W(W)) tcam (
        .clk(clk),
        .rst(rst),
        .cfg_we(entry_we),
        .cfg_bank(inactive),
        .cfg_index(reg_wdata[IW-1:0]),
        .cfg_value(stage_value[W-1:0]),
        .cfg_mask(stage_mask[W-1:0]),
        .cfg_entry_valid(reg_wdata[31]),
        .key_valid(r_valid),
        .key_bank(s1_bank),
        .key(r_key),
        .res_valid(t_valid),
        .res_hit(t_hit),
        .res_index(t_index)
    );

    // ---- Stage 3: actions -------------------------------------------------------
    wire          a_valid, a_decided;
    wire [1:0]    a_verdict;
    wire [RW-1:0] a_rule;
    wire [63:0]   rd_packets, rd_bytes, rd_drops;
    reg  [4:0]    s3_class;
    reg  [31:0]   s3_len;
    reg  [63:0]   s3_ts;
    reg           s3_bank, s3_hit;
    reg  [IW-1:0] s3_index;

    palisade_action #(.N(N), .RULES(RULES)) actions (
        .clk(clk),
        .rst(rst),
        .cfg_bank(inactive),
        .cfg_entry_we(entry_we),
        .cfg_entry_index(reg_wdata[IW-1:0]),
        .cfg_entry_rule(stage_rule),
        .cfg_entry_decides(reg_wdata[30]),
        .cfg_rule_we(rule_we),
        .cfg_rule_index(reg_wdata[RW-1:0]),
        .cfg_rule_action(reg_wdata[31:30]),
        .cfg_rule_bits(reg_wdata[29]),
        .cfg_rule_rate(stage_rate),
        .cfg_rule_capacity(stage_capacity),
        .rd_en(counter_sel),
        .rd_bank(reg_wdata[31]),
        .rd_rule(reg_wdata[RW-1:0]),
        .rd_packets(rd_packets),
        .rd_bytes(rd_bytes),
        .rd_drops(rd_drops),
        .in_valid(t_valid),
        .in_bank(s2_bank),
        .in_hit(t_hit && s2_ip),
        .in_index(t_index),
        .in_len(s2_len),
        .in_ts(s2_ts),
        .out_valid(a_valid),
        .out_verdict(a_verdict),
        .out_decided(a_decided),
        .out_rule(a_rule)
    );

    // ---- Packet metadata beside the stages; the verdict out ----------------------
    always @(posedge clk) begin
        if (rst) begin
            s1_valid <= 1'b0;
            s2_valid <= 1'b0;
            m_valid <= 1'b0;
        end else begin
            s1_valid <= p_valid;
            s2_valid <= s1_valid;
            m_valid <= a_valid;
        end
        s1_bank <= active_bank;
        s1_ip <= p_class == 5'd0;
        s1_class <= p_class;
        s1_len <= p_len;
        s1_ts <= p_ts;
        s2_bank <= s1_bank;
        s2_ip <= s1_ip;
        s2_class <= s1_class;
        s2_len <= s1_len;
        s2_ts <= s1_ts;
        s3_bank <= s2_bank;
        s3_class <= s2_class;
        s3_len <= s2_len;
        s3_ts <= s2_ts;
        s3_hit <= t_hit && s2_ip;
        s3_index <= t_index;
        m_verdict <= a_verdict;
        m_decided <= a_decided;
        m_rule <= a_rule;
        m_hit <= s3_hit;
        m_entry <= s3_index;
        m_class <= s3_class;
        m_len <= s3_len;
        m_ts <= s3_ts;
        m_bank <= s3_bank;
    end

    // ---- Register bus -------------------------------------------------------------
    wire busy = (s1_valid && s1_bank != active_bank) || (s2_valid && s2_bank != active_bank);
    always @(posedge clk) begin
        if (rst) begin
            active_bank <= 1'b0;
            reg_rdata <= 32'd0;
            stage_rule <= {RW{1'b0}};
            stage_rate <= 64'd0;
            stage_capacity <= 128'd0;
            stage_range <= 32'd0;
            stage_value <= {32*KW{1'b0}};
            stage_mask <= {32*KW{1'b0}};
        end else if (reg_valid) begin
            if (reg_write) begin
                if (reg_addr == 12'h010) active_bank <= inactive;
                if (reg_addr[11:5] == 7'h08 && word_ok) stage_value[32*word +: 32] <= reg_wdata;
                if (reg_addr[11:5] == 7'h09 && word_ok) stage_mask[32*word +: 32] <= reg_wdata;
                if (reg_addr == 12'h140) stage_rule <= reg_wdata[RW-1:0];
                if (reg_addr == 12'h150) stage_rate[31:0] <= reg_wdata;
                if (reg_addr == 12'h151) stage_rate[63:32] <= reg_wdata;
                if (reg_addr == 12'h152) stage_capacity[31:0] <= reg_wdata;
                if (reg_addr == 12'h153) stage_capacity[63:32] <= reg_wdata;
                if (reg_addr == 12'h154) stage_capacity[95:64] <= reg_wdata;
                if (reg_addr == 12'h155) stage_capacity[127:96] <= reg_wdata;
                if (reg_addr == 12'h160) stage_range <= reg_wdata;
            end else begin
                case (reg_addr)
                    12'h000: reg_rdata <= 32'h50414c53;
                    12'h001: reg_rdata <= N;
                    12'h002: reg_rdata <= RULES;
                    12'h003: reg_rdata <= R;
                    12'h004: reg_rdata <= W;
                    12'h005: reg_rdata <= DATA_W;
                    12'h010: reg_rdata <= {31'd0, active_bank};
                    12'h011: reg_rdata <= {31'd0, busy};
                    12'h171: reg_rdata <= rd_packets[31:0];
                    12'h172: reg_rdata <= rd_packets[63:32];
                    12'h173: reg_rdata <= rd_bytes[31:0];
                    12'h174: reg_rdata <= rd_bytes[63:32];
                    12'h175: reg_rdata <= rd_drops[31:0];
                    12'h176: reg_rdata <= rd_drops[63:32];
                    default: reg_rdata <= 32'd0;
                endcase
            end
        end
    end

endmodule

`default_nettype wire
