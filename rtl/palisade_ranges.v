`default_nettype none
// palisade_ranges: the port range checkers of Palisade's SmartNIC match
// pipeline.
//
// R checkers shared by every TCAM entry. Checker i compares one port of
// the key (source or destination) with one range [lo, hi] and sets key bit
// 345 + i when the packet's ports were read (the key's ports_valid bit) and
// the port lies in the range, as compiler/src/tcam/checkers.rs defines it;
// a disabled checker never hits. The entries then match the hit bits like
// any other key bit.
//
// Each checker has a configuration in each of the two banks, written by
// bank like the TCAM's entries, and every key is checked with the bank it
// carries, so a policy's checkers change with its table.
//
// One key per clock: the key with its hit bits is registered (out_valid
// one cycle after in_valid); the compare runs only on clocks with a key.
//
// Parameters are checked at elaboration (an out-of-range value stops it).
module palisade_ranges #(
    // Range checkers; 1 to 16 (the key has room for 16,
    // compiler/src/tcam/layout.rs MAX_RANGE_CHECKERS).
    parameter integer R = 8
) (
    input  wire           clk,
    input  wire           rst,
    // Configuration of checker cfg_index in bank cfg_bank.
    input  wire           cfg_we,
    input  wire           cfg_bank,
    input  wire [3:0]     cfg_index,
    input  wire           cfg_enable,
    input  wire           cfg_dst,      // 0 source port, 1 destination port
    input  wire [15:0]    cfg_lo,
    input  wire [15:0]    cfg_hi,
    // Keys in, with their bank.
    input  wire           in_valid,
    input  wire           in_bank,
    input  wire [344:0]   in_key,
    // Keys out with the hit bits above bit 344.
    output reg            out_valid,
    output reg [345+R-1:0] out_key
);

    initial begin
        if (R < 1 || R > 16) begin
            $display("palisade_ranges: R = %0d is outside 1..16", R);
            $finish;
        end
    end

    // Key fields (compiler/src/tcam/layout.rs).
    localparam integer DST_PORT = 45;
    localparam integer SRC_PORT = 61;
    localparam integer PORTS_VALID = 77;

    // Bank b's checker i at index {b, i}.
    reg [31:0] enable;
    reg [31:0] dst;
    reg [15:0] lo [0:31];
    reg [15:0] hi [0:31];

    always @(posedge clk) begin
        if (rst) begin
            enable <= 32'd0;
            dst <= 32'd0;
        end else if (cfg_we) begin
            enable[{cfg_bank, cfg_index}] <= cfg_enable;
            dst[{cfg_bank, cfg_index}] <= cfg_dst;
            lo[{cfg_bank, cfg_index}] <= cfg_lo;
            hi[{cfg_bank, cfg_index}] <= cfg_hi;
        end
    end

    wire [15:0] sport = in_key[SRC_PORT +: 16];
    wire [15:0] dport = in_key[DST_PORT +: 16];
    integer i;
    reg [R-1:0] hits;
    reg [15:0] port;
    reg [4:0] at;
    /* verilator lint_off BLKSEQ */
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            out_key <= {(345+R){1'b0}};
        end else begin
            out_valid <= in_valid;
            if (in_valid) begin
                for (i = 0; i < R; i = i + 1) begin
                    at = {in_bank, i[3:0]};
                    port = dst[at] ? dport : sport;
                    hits[i] = enable[at] && in_key[PORTS_VALID] && port >= lo[at] && port <= hi[at];
                end
                out_key <= {hits, in_key};
            end
        end
    end
    /* verilator lint_on BLKSEQ */

endmodule

`default_nettype wire
