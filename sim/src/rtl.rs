//! The cxx bridge to the Verilated pipeline (`cpp/tcam.h`).

#[cxx::bridge(namespace = "palisade")]
pub(crate) mod ffi {
    unsafe extern "C++" {
        include!("sim/cpp/tcam.h");

        type Tcam;

        fn new_tcam(entries: u32) -> UniquePtr<Tcam>;
        fn tcam_sizes() -> Vec<u32>;

        fn entries(self: &Tcam) -> u32;
        fn key_bits(self: &Tcam) -> u32;
        fn cycles(self: &Tcam) -> u64;
        fn reset(self: Pin<&mut Tcam>);
        fn write(self: Pin<&mut Tcam>, index: u32, value: &[u32], mask: &[u32], valid: bool) -> Result<()>;
        fn commit(self: Pin<&mut Tcam>);
        fn lookup(self: Pin<&mut Tcam>, keys: &[u32], out: &mut [i32]) -> Result<()>;
        fn idle(self: Pin<&mut Tcam>, clocks: u64);
    }
}
