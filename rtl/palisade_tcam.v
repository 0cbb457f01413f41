`default_nettype none
// palisade_tcam: the TCAM stage of Palisade's SmartNIC match pipeline.
//
// N entries of W bits (value, mask, valid) in each of two banks. Every key
// comes with the bank it is looked up in, and configuration writes name
// their bank: the pipeline (palisade_pipeline.v) holds the one commit
// register, writes only the bank no key uses, and tags each packet with
// the active bank as it enters, so a whole table changes atomically: every
// packet is decided by one bank.
//
// Priority is the entry index: the lowest-numbered valid entry whose
// value equals the key on every bit its mask has set wins. The driver
// writes entries in the compiler's priority order.
//
// One lookup per clock: a key presented with key_valid is compared with
// every entry on that clock edge, and its result is registered
// (res_valid one cycle after key_valid).
//
// Two structures, one behaviour (FLOPS). The simulation structure (0)
// holds the banks as memories and compares in a loop that runs only on
// clocks with a valid key and stops at the first match, so idle cycles and
// entries after the winner cost a simulator nothing. The flip-flop
// structure (1) is what synthesis should build: every entry its own
// registers, a match line per entry, a priority encoder; synthesis tools
// turn the memories-in-a-loop form into far more logic. A test bench
// drives both with the same random writes, commits and keys and compares
// every output on every clock (sim/tests/tcam.rs).
//
// Parameters are checked at elaboration (an out-of-range value stops it).
module palisade_tcam #(
    // Entries per bank; at least 1, at most 65536.
    parameter integer N = 64,
    // Key width in bits; at least 1 (Palisade's key: 345 without range
    // checkers, up to 361 with them).
    parameter integer W = 345,
    // 0: the simulation structure; 1: the flip-flop structure (synthesis).
    parameter integer FLOPS = 0,
    // Bits of an entry index; derived, do not set.
    parameter integer IW = (N > 1) ? $clog2(N) : 1
) (
    input  wire          clk,
    input  wire          rst,
    // Configuration: write entry cfg_index of bank cfg_bank.
    input  wire          cfg_we,
    input  wire          cfg_bank,
    input  wire [IW-1:0] cfg_index,
    input  wire [W-1:0]  cfg_value,
    input  wire [W-1:0]  cfg_mask,
    input  wire          cfg_entry_valid,
    // Lookup of key in bank key_bank.
    input  wire          key_valid,
    input  wire          key_bank,
    input  wire [W-1:0]  key,
    output reg           res_valid,
    output reg           res_hit,
    output reg [IW-1:0]  res_index
);

    initial begin
        if (N < 1 || N > 65536) begin
            $display("palisade_tcam: N = %0d is outside 1..65536", N);
            $finish;
        end
        if (W < 1) begin
            $display("palisade_tcam: W = %0d must be at least 1", W);
            $finish;
        end
        if (FLOPS != 0 && FLOPS != 1) begin
            $display("palisade_tcam: FLOPS = %0d is neither 0 nor 1", FLOPS);
            $finish;
        end
    end

    generate
    if (FLOPS == 0) begin : memories

    // Bank b's entry i is at address {b, i}: each bank spans 2**IW slots
    // (N rounded up to a power of two), of which the first N are used.
    localparam integer SLOTS = 2 << IW;
    reg [W-1:0] value [0:SLOTS-1];
    reg [W-1:0] mask  [0:SLOTS-1];
    reg [SLOTS-1:0] entry_valid;

    // Two narrow slices of every entry, kept apart as well and compared
    // before the whole key: they change nothing in the answer (the whole
    // key is compared too), but most entries differ from a key there, so a
    // simulator mostly reads these small arrays and rarely the wide ones.
    // On Palisade's key they are the low 32 bits of the destination (bit
    // 88) and source (bit 216) address; on a narrower key, the low bits.
    localparam integer QW = (W >= 32) ? 32 : W;
    localparam integer Q0 = (W >= 120) ? 88 : 0;
    localparam integer Q1 = (W >= 248) ? 216 : 0;
    reg [2*QW-1:0] qvalue [0:SLOTS-1];
    reg [2*QW-1:0] qmask  [0:SLOTS-1];

    always @(posedge clk) begin
        if (rst) begin
            /* verilator lint_off WIDTHCONCAT */
            entry_valid <= {SLOTS{1'b0}};   // wide on purpose at large N
            /* verilator lint_on WIDTHCONCAT */
        end else if (cfg_we) begin
            value[{cfg_bank, cfg_index}] <= cfg_value & cfg_mask;
            mask[{cfg_bank, cfg_index}] <= cfg_mask;
            qvalue[{cfg_bank, cfg_index}] <= {cfg_value[Q1 +: QW] & cfg_mask[Q1 +: QW],
                                              cfg_value[Q0 +: QW] & cfg_mask[Q0 +: QW]};
            qmask[{cfg_bank, cfg_index}] <= {cfg_mask[Q1 +: QW], cfg_mask[Q0 +: QW]};
            entry_valid[{cfg_bank, cfg_index}] <= cfg_entry_valid;
        end
    end

    // The compare: the lowest matching index of the key's bank. hit and
    // index are the loop's own temporaries, assigned with `=` on purpose;
    // only the res_* registers leave the block. The loop stops at the
    // first match, which is the priority encoder's answer; a simulator then
    // pays for the entries before it only.
    wire [2*QW-1:0] qkey = {key[Q1 +: QW], key[Q0 +: QW]};
    integer i;
    reg hit;
    reg [IW-1:0] index;
    /* verilator lint_off BLKSEQ */
    always @(posedge clk) begin
        if (rst) begin
            res_valid <= 1'b0;
            res_hit <= 1'b0;
            res_index <= {IW{1'b0}};
        end else begin
            res_valid <= key_valid;
            if (key_valid) begin
                hit = 1'b0;
                index = {IW{1'b0}};
                for (i = 0; i < N && !hit; i = i + 1) begin
                    if (entry_valid[{key_bank, i[IW-1:0]}]
                        && ((qkey & qmask[{key_bank, i[IW-1:0]}]) == qvalue[{key_bank, i[IW-1:0]}])
                        && ((key & mask[{key_bank, i[IW-1:0]}]) == value[{key_bank, i[IW-1:0]}])) begin
                        hit = 1'b1;
                        index = i[IW-1:0];
                    end
                end
                res_hit <= hit;
                res_index <= index;
            end
        end
    end
    /* verilator lint_on BLKSEQ */
    end else begin : flip_flops

    // Entry g of bank b: value, mask, valid in registers of its own.
    wire [N-1:0] match;
    genvar g;
    for (g = 0; g < N; g = g + 1) begin : entry
        reg [W-1:0] value0, mask0, value1, mask1;
        reg valid0, valid1;
        always @(posedge clk) begin
            if (rst) begin
                valid0 <= 1'b0;
                valid1 <= 1'b0;
            end else if (cfg_we && cfg_index == g) begin
                if (cfg_bank) begin
                    value1 <= cfg_value & cfg_mask;
                    mask1 <= cfg_mask;
                    valid1 <= cfg_entry_valid;
                end else begin
                    value0 <= cfg_value & cfg_mask;
                    mask0 <= cfg_mask;
                    valid0 <= cfg_entry_valid;
                end
            end
        end
        assign match[g] = key_bank ? (valid1 && (key & mask1) == value1)
                                   : (valid0 && (key & mask0) == value0);
    end

    // The priority encoder: the lowest matching index (0 when none).
    integer j;
    reg [IW-1:0] first;
    always @* begin
        first = {IW{1'b0}};
        for (j = N - 1; j >= 0; j = j - 1) begin
            if (match[j]) first = j[IW-1:0];
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            res_valid <= 1'b0;
            res_hit <= 1'b0;
            res_index <= {IW{1'b0}};
        end else begin
            res_valid <= key_valid;
            if (key_valid) begin
                res_hit <= |match;
                res_index <= first;
            end
        end
    end
    end
    endgenerate

endmodule

`default_nettype wire
