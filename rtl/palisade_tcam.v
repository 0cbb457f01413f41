`default_nettype none
// palisade_tcam: the TCAM stage of Palisade's SmartNIC match pipeline.
//
// N entries of W bits (value, mask, valid) in each of two banks. Lookups
// use the active bank; configuration writes go to the other one, and a
// commit makes it active between two lookups, so a whole table changes
// atomically: every key is looked up in one bank only.
//
// Priority is the entry index: the lowest-numbered valid entry whose
// value equals the key on every bit its mask has set wins. The driver
// writes entries in the compiler's priority order.
//
// One lookup per clock: a key presented with key_valid is compared with
// every entry on that clock edge, and its result is registered
// (res_valid one cycle after key_valid). The compare is evaluated only on
// clocks with a valid key, so idle cycles cost a simulator nothing.
//
// Parameters are checked at elaboration (an out-of-range value stops it).
module palisade_tcam #(
    // Entries per bank; at least 1, at most 65536.
    parameter integer N = 64,
    // Key width in bits; at least 1 (Palisade's key: 345 without range
    // checkers, up to 361 with them).
    parameter integer W = 345,
    // Bits of an entry index; derived, do not set.
    parameter integer IW = (N > 1) ? $clog2(N) : 1
) (
    input  wire          clk,
    input  wire          rst,
    // Configuration: write entry cfg_index of the inactive bank.
    input  wire          cfg_we,
    input  wire [IW-1:0] cfg_index,
    input  wire [W-1:0]  cfg_value,
    input  wire [W-1:0]  cfg_mask,
    input  wire          cfg_entry_valid,
    // Make the inactive bank active (takes effect for the next key).
    input  wire          cfg_commit,
    output reg           active_bank,
    // Lookup.
    input  wire          key_valid,
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
    end

    // Bank b's entry i is at address {b, i}: each bank spans 2**IW slots
    // (N rounded up to a power of two), of which the first N are used.
    localparam integer SLOTS = 2 << IW;
    reg [W-1:0] value [0:SLOTS-1];
    reg [W-1:0] mask  [0:SLOTS-1];
    reg [SLOTS-1:0] entry_valid;

    wire inactive = ~active_bank;

    always @(posedge clk) begin
        if (rst) begin
            active_bank <= 1'b0;
            entry_valid <= {SLOTS{1'b0}};
        end else begin
            if (cfg_we) begin
                value[{inactive, cfg_index}] <= cfg_value & cfg_mask;
                mask[{inactive, cfg_index}] <= cfg_mask;
                entry_valid[{inactive, cfg_index}] <= cfg_entry_valid;
            end
            if (cfg_commit) begin
                active_bank <= inactive;
            end
        end
    end

    // The compare: the lowest matching index of the active bank. hit and
    // index are the loop's own temporaries, assigned with `=` on purpose
    // (the priority chain); only the res_* registers leave the block.
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
                for (i = N - 1; i >= 0; i = i - 1) begin
                    if (entry_valid[{active_bank, i[IW-1:0]}]
                        && ((key & mask[{active_bank, i[IW-1:0]}]) == value[{active_bank, i[IW-1:0]}])) begin
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

endmodule

`default_nettype wire
