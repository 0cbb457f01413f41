//! The cxx bridge to the Verilated pipeline (`cpp/`).

#[cxx::bridge(namespace = "palisade")]
pub(crate) mod ffi {
    unsafe extern "C++" {
        include!("sim/cpp/tcam.h");
        include!("sim/cpp/parser.h");
        include!("sim/cpp/nic.h");

        type Tcam;

        fn new_tcam(entries: u32) -> UniquePtr<Tcam>;
        fn tcam_sizes() -> Vec<u32>;
        fn tcam_structures_agree(clocks: u64, seed: u64) -> Result<u64>;

        fn entries(self: &Tcam) -> u32;
        fn key_bits(self: &Tcam) -> u32;
        fn cycles(self: &Tcam) -> u64;
        fn reset(self: Pin<&mut Tcam>);
        fn write(self: Pin<&mut Tcam>, index: u32, value: &[u32], mask: &[u32], valid: bool) -> Result<()>;
        fn commit(self: Pin<&mut Tcam>);
        fn lookup(self: Pin<&mut Tcam>, keys: &[u32], out: &mut [i32]) -> Result<()>;
        fn idle(self: Pin<&mut Tcam>, clocks: u64);

        type Parser;

        fn new_parser(data_bits: u32) -> UniquePtr<Parser>;
        fn parser_widths() -> Vec<u32>;

        fn data_bits(self: &Parser) -> u32;
        fn cycles(self: &Parser) -> u64;
        #[allow(clippy::too_many_arguments)]
        fn run(
            self: Pin<&mut Parser>,
            bytes: &[u8],
            lens: &[u32],
            gap_pct: u32,
            stall_pct: u32,
            seed: u64,
            out_class: &mut [u8],
            out_ethertype: &mut [u16],
            out_len: &mut [u32],
            out_key: &mut [u32],
        ) -> Result<()>;

        type Nic;

        fn new_nic(entries: u32) -> UniquePtr<Nic>;
        fn nic_sizes() -> Vec<u32>;

        fn entries(self: &Nic) -> u32;
        fn data_bits(self: &Nic) -> u32;
        fn cycles(self: &Nic) -> u64;
        fn reg_write(self: Pin<&mut Nic>, addr: u32, data: u32);
        fn reg_read(self: Pin<&mut Nic>, addr: u32) -> u32;
        #[allow(clippy::too_many_arguments)]
        fn run(
            self: Pin<&mut Nic>,
            bytes: &[u8],
            lens: &[u32],
            ts_ns: &[u64],
            period_ps: u64,
            op_frame: &[u32],
            op_addr: &[u32],
            op_data: &[u32],
            out_verdict: &mut [u8],
            out_entry: &mut [i32],
            out_rule: &mut [i32],
            out_class: &mut [u8],
            out_bank: &mut [u8],
        ) -> Result<()>;
    }
}
