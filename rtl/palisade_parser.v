`default_nettype none
// palisade_parser: the packet input and header parser of Palisade's
// SmartNIC match pipeline.
//
// Frames come in as an AXI-Stream-like byte stream (s_axis_*): tdata holds
// DATA_W / 8 byte lanes, lane 0 (tdata[7:0]) first on the wire; tkeep marks
// the valid lanes, which must be lanes 0 .. k-1 (only the last beat of a
// frame may be partial, and it may be empty); tlast marks a frame's last
// beat. A beat moves on a clock where tvalid and tready are both high.
//
// For each frame, one result leaves on m_* (m_valid / m_ready): the class
// (an IP packet with its key, a non-IP frame with its EtherType, or a
// malformed frame with the reason), the frame length in bytes, and the
// tuser sideband of the frame's first beat (the pipeline's arrival
// timestamp). The key
// is Palisade's match key (compiler/src/tcam/layout.rs) without the range
// checker bits, read exactly as the reference parser does
// (compiler/src/wire.rs, rules 1-6): two VLAN tags at most, IPv4 with
// options and fragments, IPv6 with up to 8 extension headers, TCP/UDP/SCTP
// ports, TCP flags, ICMP/ICMPv6 type and code.
//
// How: one header at a time. The parser keeps the current beat and, for
// the header it is reading, the byte offset where it starts and the bytes
// it needs (at most 40, the IPv6 header); every clock it copies the needed
// bytes this beat holds. When the last of them has arrived the header is
// decoded in that clock and the next one is chosen; if the next header
// starts inside the same beat the beat is held (tready low) and read again
// on the next clock, so several headers in one wide beat take one clock
// each. Bytes past the last header are counted, never stored. Checks that
// need the frame length (a header cut short by the end of the frame, IP
// length fields beyond it) are settled after the last beat, in the order
// the reference applies them; a frame's result leaves one clock after its
// last beat.
//
// Throughput: one beat per clock, plus one clock for each header that
// starts in a beat already read, plus one clock per frame.
//
// Parameters are checked at elaboration (an out-of-range value stops it).
module palisade_parser #(
    // Stream data width in bits: a multiple of 8, at least 64, at most 4096.
    parameter integer DATA_W = 64,
    // Byte lanes of a beat; derived, do not set.
    parameter integer KEEP_W = DATA_W / 8,
    // Width of the tuser sideband carried from a frame's first beat to
    // its result; at least 1.
    parameter integer USER_W = 1,
    // Bits of a lane index; derived, do not set.
    parameter integer LANE_W = (KEEP_W > 1) ? $clog2(KEEP_W) : 1
) (
    input  wire              clk,
    input  wire              rst,
    // Frames in.
    input  wire [DATA_W-1:0] s_axis_tdata,
    input  wire [KEEP_W-1:0] s_axis_tkeep,
    input  wire              s_axis_tvalid,
    output wire              s_axis_tready,
    input  wire              s_axis_tlast,
    input  wire [USER_W-1:0] s_axis_tuser,
    // One result per frame.
    output reg               m_valid,
    input  wire              m_ready,
    // Class: 0 IP (m_key holds its key), 1 non-IP (m_ethertype), 2 and up
    // malformed: 2-10 truncated ethernet, vlan, ipv4, ipv6, ipv6
    // extension, tcp, udp, sctp, icmp; 11 too many tags; 12 bad version;
    // 13 bad IHL; 14 bad length; 15 extension chain too long; 16 bad TCP
    // data offset.
    output reg [4:0]         m_class,
    output reg [15:0]        m_ethertype,
    output reg [344:0]       m_key,
    output reg [31:0]        m_len,
    output reg [USER_W-1:0]  m_user
);

    initial begin
        if (DATA_W < 64 || DATA_W > 4096 || DATA_W % 8 != 0) begin
            $display("palisade_parser: DATA_W = %0d is not a multiple of 8 in 64..4096", DATA_W);
            $finish;
        end
        if (USER_W < 1) begin
            $display("palisade_parser: USER_W = %0d must be at least 1", USER_W);
            $finish;
        end
    end

    // ---- Classes --------------------------------------------------------
    localparam [4:0] C_IP = 5'd0;
    localparam [4:0] C_NON_IP = 5'd1;
    localparam [4:0] C_TRUNC_ETH = 5'd2;
    localparam [4:0] C_TRUNC_VLAN = 5'd3;
    localparam [4:0] C_TRUNC_IPV4 = 5'd4;
    localparam [4:0] C_TRUNC_IPV6 = 5'd5;
    localparam [4:0] C_TRUNC_EXT = 5'd6;
    localparam [4:0] C_TRUNC_TCP = 5'd7;
    localparam [4:0] C_TRUNC_UDP = 5'd8;
    localparam [4:0] C_TRUNC_SCTP = 5'd9;
    localparam [4:0] C_TRUNC_ICMP = 5'd10;
    localparam [4:0] C_TOO_MANY_TAGS = 5'd11;
    localparam [4:0] C_BAD_VERSION = 5'd12;
    localparam [4:0] C_BAD_IHL = 5'd13;
    localparam [4:0] C_BAD_LENGTH = 5'd14;
    localparam [4:0] C_EXT_TOO_LONG = 5'd15;
    localparam [4:0] C_BAD_TCP_OFFSET = 5'd16;
    // "No error yet" in the error registers.
    localparam [4:0] C_NONE = 5'd31;

    // ---- Parser states: the header being read -------------------------------
    localparam [2:0] S_ETH = 3'd0;   // Ethernet, 14 bytes
    localparam [2:0] S_VLAN = 3'd1;  // a VLAN tag, 4 bytes
    localparam [2:0] S_IPV4 = 3'd2;  // IPv4 without options, 20 bytes
    localparam [2:0] S_IPV6 = 3'd3;  // IPv6, 40 bytes
    localparam [2:0] S_EXT = 3'd4;   // an IPv6 extension header's first 2 (8) bytes
    localparam [2:0] S_L4 = 3'd5;    // TCP 20, UDP 8, SCTP 12, ICMP 4 bytes
    localparam [2:0] S_DONE = 3'd6;  // nothing more to read in this frame

    // Extension header kinds (wire.rs rule 5.1).
    localparam [1:0] X_GENERIC = 2'd0;
    localparam [1:0] X_AH = 2'd1;
    localparam [1:0] X_FRAG = 2'd2;
    // L4 kinds (rule 6).
    localparam [1:0] L_TCP = 2'd0;
    localparam [1:0] L_UDP = 2'd1;
    localparam [1:0] L_SCTP = 2'd2;
    localparam [1:0] L_ICMP = 2'd3;

    localparam integer CAP = 40;     // bytes of the longest header read

    // Extension headers walked at most (MAX_EXT_HEADERS in wire.rs).
    localparam [3:0] MAX_EXT = 4'd8;

    // ---- Registers --------------------------------------------------------
    // The current beat and the frame offset of its first byte.
    reg              b_valid;
    reg [DATA_W-1:0] b_data;
    reg [KEEP_W-1:0] b_keep;
    reg              b_last;
    reg [USER_W-1:0] b_user;
    reg [31:0]       b_off;
    // tuser of the frame's first beat.
    reg [USER_W-1:0] frame_user;
    // Offset of the next beat of this frame.
    reg [31:0]       next_off;
    // The frame's last beat is read: its result is due.
    reg              fin;
    reg [31:0]       frame_len;

    // The header being read: where it starts, how many bytes, those seen.
    reg [2:0]        state;
    reg [31:0]       pos;
    reg [5:0]        need;
    reg [8*CAP-1:0]  cap;
    reg [1:0]        ext_kind;
    reg [1:0]        l4_kind;

    // What the frame has shown so far.
    reg [1:0]        tags;
    reg [11:0]       vid;
    reg [15:0]       ethertype;
    reg              is_ip;       // the IP header was read and accepted
    reg              family;      // 1 = IPv6
    reg [127:0]      src;
    reg [127:0]      dst;
    reg [7:0]        proto;
    reg [5:0]        dscp;
    reg [1:0]        frag;
    reg              ports_valid;
    reg [15:0]       sport;
    reg [15:0]       dport;
    reg              flags_valid;
    reg [7:0]        tcp_flags;
    reg              icmp_valid;
    reg [7:0]        icmp_type;
    reg [7:0]        icmp_code;
    reg [3:0]        walked;
    // Length checks settled after the last beat (rules 4 and 5).
    reg [31:0]       hdr_end;     // IPv4: end of the header with options
    reg [31:0]       ip_end;      // end of the IP packet (total / payload length)
    reg              bad_total;   // IPv4 total length below the header length
    // Errors found while reading: before the IP length checks (Ethernet,
    // tags, the IP header) and after them (extension headers, L4).
    reg [4:0]        err_early;
    reg [4:0]        err_late;

    // ---- This clock: bytes of the beat, then one header ------------------------
    // Valid bytes of the current beat: the highest kept lane + 1.
    reg [31:0]       b_len;
    integer          j;
    always @* begin
        b_len = 32'd0;
        for (j = 0; j < KEEP_W; j = j + 1) begin
            if (b_keep[j]) b_len = j + 1;
        end
    end
    wire [31:0] beat_end = b_off + b_len;
    // A beat is read on clocks without a pending result.
    wire step = b_valid && !fin;

    // Big-endian fields of the captured bytes.
    function [7:0] byte_at;
        input [8*CAP-1:0] c;
        input integer k;
        byte_at = c[8*k +: 8];
    endfunction
    function [15:0] u16_at;
        input [8*CAP-1:0] c;
        input integer k;
        u16_at = {c[8*k +: 8], c[8*(k+1) +: 8]};
    endfunction

    // Sixteen bytes from byte k on, the first the most significant.
    function [127:0] u128_at;
        input [8*CAP-1:0] c;
        input integer k;
        integer i;
        begin
            u128_at = 128'd0;
            for (i = 0; i < 16; i = i + 1) u128_at[8*(15-i) +: 8] = c[8*(k+i) +: 8];
        end
    endfunction

    reg [8*CAP-1:0]  cap_n;
    reg [31:0]       a;
    // Only the lane bits of the difference are used.
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0]       rel;
    /* verilator lint_on UNUSEDSIGNAL */
    integer          k;
    // Next values of the registers a header decode may change.
    reg [2:0]        state_n;
    reg [31:0]       pos_n;
    reg [5:0]        need_n;
    reg [1:0]        ext_kind_n;
    reg [1:0]        l4_kind_n;
    reg [1:0]        tags_n;
    reg [11:0]       vid_n;
    reg [15:0]       ethertype_n;
    reg              is_ip_n;
    reg              family_n;
    reg [127:0]      src_n;
    reg [127:0]      dst_n;
    reg [7:0]        proto_n;
    reg [5:0]        dscp_n;
    reg [1:0]        frag_n;
    reg              ports_valid_n;
    reg [15:0]       sport_n;
    reg [15:0]       dport_n;
    reg              flags_valid_n;
    reg [7:0]        tcp_flags_n;
    reg              icmp_valid_n;
    reg [7:0]        icmp_type_n;
    reg [7:0]        icmp_code_n;
    reg [3:0]        walked_n;
    reg [31:0]       hdr_end_n;
    reg [31:0]       ip_end_n;
    reg              bad_total_n;
    reg [4:0]        err_early_n;
    reg [4:0]        err_late_n;
    // Hand-offs between the decode and the choice of the next header.
    reg              go_eth;      // next: what EtherType `nx` says, at `q`
    reg              go_ext;      // next: IPv6 next header `nx`, at `q`
    reg              go_l4;       // next: L4 of protocol `nx`, at `q`
    reg [15:0]       nx;
    reg [31:0]       q;
    reg [7:0]        icmp_proto;
    reg [31:0]       len;
    reg [3:0]        ihl;
    reg [3:0]        doff;
    reg [12:0]       frag_off;
    reg              complete;

    always @* begin
        // Copy this beat's bytes of the header being read.
        cap_n = cap;
        a = 32'd0;
        rel = 32'd0;
        for (k = 0; k < CAP; k = k + 1) begin
            a = pos + k;
            if (k < need && a >= b_off && a < beat_end) begin
                rel = a - b_off;
                cap_n[8*k +: 8] = b_data[8*rel[LANE_W-1:0] +: 8];
            end
        end
        complete = step && state != S_DONE && pos + {26'd0, need} <= beat_end;

        state_n = state;
        pos_n = pos;
        need_n = need;
        ext_kind_n = ext_kind;
        l4_kind_n = l4_kind;
        tags_n = tags;
        vid_n = vid;
        ethertype_n = ethertype;
        is_ip_n = is_ip;
        family_n = family;
        src_n = src;
        dst_n = dst;
        proto_n = proto;
        dscp_n = dscp;
        frag_n = frag;
        ports_valid_n = ports_valid;
        sport_n = sport;
        dport_n = dport;
        flags_valid_n = flags_valid;
        tcp_flags_n = tcp_flags;
        icmp_valid_n = icmp_valid;
        icmp_type_n = icmp_type;
        icmp_code_n = icmp_code;
        walked_n = walked;
        hdr_end_n = hdr_end;
        ip_end_n = ip_end;
        bad_total_n = bad_total;
        err_early_n = err_early;
        err_late_n = err_late;
        go_eth = 1'b0;
        go_ext = 1'b0;
        go_l4 = 1'b0;
        nx = 16'd0;
        q = 32'd0;
        icmp_proto = 8'd1;
        len = 32'd0;
        ihl = 4'd0;
        doff = 4'd0;
        frag_off = 13'd0;

        // Decode the header whose last needed byte arrived on this clock.
        if (complete) begin
            case (state)
                S_ETH: begin                        // rule 1
                    nx = u16_at(cap_n, 12);
                    q = pos + 32'd14;
                    go_eth = 1'b1;
                end
                S_VLAN: begin                       // rule 2
                    if (tags == 2'd0) vid_n = {cap_n[0 +: 4], cap_n[8 +: 8]};
                    tags_n = tags + 2'd1;
                    nx = u16_at(cap_n, 2);
                    q = pos + 32'd4;
                    go_eth = 1'b1;
                end
                S_IPV4: begin                       // rule 4
                    ihl = cap_n[0 +: 4];
                    if (cap_n[4 +: 4] != 4'd4) begin
                        err_early_n = C_BAD_VERSION;
                        state_n = S_DONE;
                    end else if (ihl < 4'd5) begin
                        err_early_n = C_BAD_IHL;
                        state_n = S_DONE;
                    end else begin
                        is_ip_n = 1'b1;
                        family_n = 1'b0;
                        dscp_n = cap_n[8*1+2 +: 6];
                        proto_n = byte_at(cap_n, 9);
                        src_n = {96'd0, u16_at(cap_n, 12), u16_at(cap_n, 14)};
                        dst_n = {96'd0, u16_at(cap_n, 16), u16_at(cap_n, 18)};
                        hdr_end_n = pos + {26'd0, ihl, 2'b00};
                        ip_end_n = pos + {16'd0, u16_at(cap_n, 2)};
                        frag_off = {cap_n[8*6 +: 5], cap_n[8*7 +: 8]};
                        if (frag_off != 13'd0) frag_n = 2'b11;
                        else if (cap_n[8*6+5]) frag_n = 2'b01;
                        else frag_n = 2'b00;
                        if (u16_at(cap_n, 2) < {10'd0, ihl, 2'b00}) begin
                            bad_total_n = 1'b1;
                            state_n = S_DONE;
                        end else if (frag_off != 13'd0) begin
                            state_n = S_DONE;       // no L4 in a later fragment
                        end else begin
                            nx = {8'd0, byte_at(cap_n, 9)};
                            q = hdr_end_n;
                            icmp_proto = 8'd1;
                            go_l4 = 1'b1;
                        end
                    end
                end
                S_IPV6: begin                       // rule 5
                    if (cap_n[4 +: 4] != 4'd6) begin
                        err_early_n = C_BAD_VERSION;
                        state_n = S_DONE;
                    end else begin
                        is_ip_n = 1'b1;
                        family_n = 1'b1;
                        dscp_n = {cap_n[0 +: 4], cap_n[8+6 +: 2]};
                        src_n = u128_at(cap_n, 8);
                        dst_n = u128_at(cap_n, 24);
                        ip_end_n = pos + 32'd40 + {16'd0, u16_at(cap_n, 4)};
                        nx = {8'd0, byte_at(cap_n, 6)};
                        q = pos + 32'd40;
                        go_ext = 1'b1;
                    end
                end
                S_EXT: begin                        // rule 5.1-5.5
                    if (ext_kind == X_FRAG && (u16_at(cap_n, 2) >> 3) != 16'd0) begin
                        proto_n = byte_at(cap_n, 0);
                        frag_n = 2'b11;
                        state_n = S_DONE;
                    end else begin
                        if (ext_kind == X_FRAG) begin
                            frag_n = 2'b01;
                            len = 32'd8;
                        end else if (ext_kind == X_AH) begin
                            len = ({24'd0, byte_at(cap_n, 1)} + 32'd2) << 2;
                        end else begin
                            len = ({24'd0, byte_at(cap_n, 1)} + 32'd1) << 3;
                        end
                        if (pos + len > ip_end) begin
                            err_late_n = C_TRUNC_EXT;
                            state_n = S_DONE;
                        end else begin
                            nx = {8'd0, byte_at(cap_n, 0)};
                            q = pos + len;
                            go_ext = 1'b1;
                        end
                    end
                end
                S_L4: begin                         // rule 6
                    state_n = S_DONE;
                    if (l4_kind == L_ICMP) begin
                        icmp_valid_n = 1'b1;
                        icmp_type_n = byte_at(cap_n, 0);
                        icmp_code_n = byte_at(cap_n, 1);
                    end else begin
                        doff = cap_n[8*12+4 +: 4];
                        if (l4_kind == L_TCP
                            && (doff < 4'd5 || pos + {26'd0, doff, 2'b00} > ip_end)) begin
                            err_late_n = C_BAD_TCP_OFFSET;
                        end else begin
                            ports_valid_n = 1'b1;
                            sport_n = u16_at(cap_n, 0);
                            dport_n = u16_at(cap_n, 2);
                            if (l4_kind == L_TCP) begin
                                flags_valid_n = 1'b1;
                                tcp_flags_n = byte_at(cap_n, 13);
                            end
                        end
                    end
                end
                default: ;
            endcase
        end

        // After Ethernet or a tag: another tag, IPv4, IPv6 or non-IP.
        if (go_eth) begin
            pos_n = q;
            if (nx == 16'h8100 || nx == 16'h88a8) begin
                if (tags_n == 2'd2) begin
                    err_early_n = C_TOO_MANY_TAGS;
                    state_n = S_DONE;
                end else begin
                    state_n = S_VLAN;
                    need_n = 6'd4;
                end
            end else if (nx == 16'h0800) begin
                state_n = S_IPV4;
                need_n = 6'd20;
            end else if (nx == 16'h86dd) begin
                state_n = S_IPV6;
                need_n = 6'd40;
            end else begin
                state_n = S_DONE;                   // non-IP (rule 3)
            end
            ethertype_n = nx;
        end

        // After the IPv6 header or an extension header (rule 5).
        if (go_ext) begin
            pos_n = q;
            if (nx[7:0] == 8'd0 || nx[7:0] == 8'd43 || nx[7:0] == 8'd60 || nx[7:0] == 8'd135
                || nx[7:0] == 8'd139 || nx[7:0] == 8'd140 || nx[7:0] == 8'd51 || nx[7:0] == 8'd44) begin
                ext_kind_n = (nx[7:0] == 8'd44) ? X_FRAG : (nx[7:0] == 8'd51) ? X_AH : X_GENERIC;
                need_n = (nx[7:0] == 8'd44) ? 6'd8 : 6'd2;
                if (walked == MAX_EXT) begin
                    err_late_n = C_EXT_TOO_LONG;
                    state_n = S_DONE;
                end else if (q + {26'd0, need_n} > ip_end_n) begin
                    err_late_n = C_TRUNC_EXT;
                    state_n = S_DONE;
                end else begin
                    walked_n = walked + 4'd1;
                    state_n = S_EXT;
                end
            end else begin
                proto_n = nx[7:0];
                icmp_proto = 8'd58;
                go_l4 = 1'b1;
            end
        end

        // The L4 header of `nx`, within the IP payload (rule 6).
        if (go_l4) begin
            pos_n = q;
            state_n = S_L4;
            if (nx[7:0] == 8'd6) begin
                l4_kind_n = L_TCP;
                need_n = 6'd20;
            end else if (nx[7:0] == 8'd17) begin
                l4_kind_n = L_UDP;
                need_n = 6'd8;
            end else if (nx[7:0] == 8'd132) begin
                l4_kind_n = L_SCTP;
                need_n = 6'd12;
            end else if (nx[7:0] == icmp_proto) begin
                l4_kind_n = L_ICMP;
                need_n = 6'd4;
            end else begin
                state_n = S_DONE;                   // no L4 fields for it
            end
            if (state_n == S_L4 && q + {26'd0, need_n} > ip_end_n) begin
                state_n = S_DONE;
                case (l4_kind_n)
                    L_TCP: err_late_n = C_TRUNC_TCP;
                    L_UDP: err_late_n = C_TRUNC_UDP;
                    L_SCTP: err_late_n = C_TRUNC_SCTP;
                    default: err_late_n = C_TRUNC_ICMP;
                endcase
            end
        end
    end

    // The beat is read again next clock when the next header starts in it.
    wire hold = complete && state_n != S_DONE && pos_n < beat_end;
    wire consume = step && !hold;
    assign s_axis_tready = !b_valid || consume;

    // The result of a frame whose last beat is read.
    reg [4:0] result;
    always @* begin
        if (err_early != C_NONE) result = err_early;
        else if (state == S_ETH) result = C_TRUNC_ETH;
        else if (state == S_VLAN) result = C_TRUNC_VLAN;
        else if (state == S_IPV4) result = C_TRUNC_IPV4;
        else if (state == S_IPV6) result = C_TRUNC_IPV6;
        else if (!is_ip) result = C_NON_IP;
        else if (!family && hdr_end > frame_len) result = C_TRUNC_IPV4;
        else if (bad_total || ip_end > frame_len) result = C_BAD_LENGTH;
        else if (err_late != C_NONE) result = err_late;
        else result = C_IP;
    end

    // The key in the compiler's layout (compiler/src/tcam/layout.rs).
    wire [344:0] key = {family, src, dst, proto, frag, ports_valid, sport, dport,
                        flags_valid, tcp_flags, icmp_valid, icmp_type, icmp_code,
                        (tags != 2'd0), vid, dscp};

    wire emit = fin && (!m_valid || m_ready);

    always @(posedge clk) begin
        if (rst) begin
            b_valid <= 1'b0;
            b_data <= {DATA_W{1'b0}};
            b_keep <= {KEEP_W{1'b0}};
            b_last <= 1'b0;
            b_user <= {USER_W{1'b0}};
            frame_user <= {USER_W{1'b0}};
            b_off <= 32'd0;
            next_off <= 32'd0;
            fin <= 1'b0;
            frame_len <= 32'd0;
            m_valid <= 1'b0;
            m_class <= C_IP;
            m_ethertype <= 16'd0;
            m_key <= 345'd0;
            m_len <= 32'd0;
            m_user <= {USER_W{1'b0}};
        end else begin
            if (m_valid && m_ready) m_valid <= 1'b0;
            if (emit) begin
                fin <= 1'b0;
                m_valid <= 1'b1;
                m_class <= result;
                m_ethertype <= ethertype;
                m_key <= (result == C_IP) ? key : 345'd0;
                m_len <= frame_len;
                m_user <= frame_user;
            end
            // A frame's first beat is read (at least once) before its
            // result is due and after the previous frame's left.
            if (step && b_off == 32'd0) frame_user <= b_user;
            if (consume) begin
                next_off <= b_last ? 32'd0 : beat_end;
                if (b_last) begin
                    fin <= 1'b1;
                    frame_len <= beat_end;
                end
            end
            if (s_axis_tready) begin
                b_valid <= s_axis_tvalid;
                if (s_axis_tvalid) begin
                    b_data <= s_axis_tdata;
                    b_keep <= s_axis_tkeep;
                    b_last <= s_axis_tlast;
                    b_user <= s_axis_tuser;
                    b_off <= consume ? (b_last ? 32'd0 : beat_end) : next_off;
                end
            end
        end
    end

    // Header state: the decode above on a step, a fresh frame after a result.
    always @(posedge clk) begin
        if (rst || emit) begin
            state <= S_ETH;
            pos <= 32'd0;
            need <= 6'd14;
            cap <= {8*CAP{1'b0}};
            ext_kind <= X_GENERIC;
            l4_kind <= L_TCP;
            tags <= 2'd0;
            vid <= 12'd0;
            ethertype <= 16'd0;
            is_ip <= 1'b0;
            family <= 1'b0;
            src <= 128'd0;
            dst <= 128'd0;
            proto <= 8'd0;
            dscp <= 6'd0;
            frag <= 2'd0;
            ports_valid <= 1'b0;
            sport <= 16'd0;
            dport <= 16'd0;
            flags_valid <= 1'b0;
            tcp_flags <= 8'd0;
            icmp_valid <= 1'b0;
            icmp_type <= 8'd0;
            icmp_code <= 8'd0;
            walked <= 4'd0;
            hdr_end <= 32'd0;
            ip_end <= 32'd0;
            bad_total <= 1'b0;
            err_early <= C_NONE;
            err_late <= C_NONE;
        end else if (step) begin
            cap <= complete ? {8*CAP{1'b0}} : cap_n;
            state <= state_n;
            pos <= pos_n;
            need <= need_n;
            ext_kind <= ext_kind_n;
            l4_kind <= l4_kind_n;
            tags <= tags_n;
            vid <= vid_n;
            ethertype <= ethertype_n;
            is_ip <= is_ip_n;
            family <= family_n;
            src <= src_n;
            dst <= dst_n;
            proto <= proto_n;
            dscp <= dscp_n;
            frag <= frag_n;
            ports_valid <= ports_valid_n;
            sport <= sport_n;
            dport <= dport_n;
            flags_valid <= flags_valid_n;
            tcp_flags <= tcp_flags_n;
            icmp_valid <= icmp_valid_n;
            icmp_type <= icmp_type_n;
            icmp_code <= icmp_code_n;
            walked <= walked_n;
            hdr_end <= hdr_end_n;
            ip_end <= ip_end_n;
            bad_total <= bad_total_n;
            err_early <= err_early_n;
            err_late <= err_late_n;
        end
    end

endmodule

`default_nettype wire
