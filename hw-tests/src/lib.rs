//! End-to-end tests on real kernels and real traffic.
//!
//! This crate will hold the harnesses that send real packets through veth
//! pairs in network namespaces created per test, boot Debian's stock kernel
//! (with cls_flower) under QEMU for the kernel flower path and the 6.1
//! verifier, and drive a real offload-capable NIC named by
//! PALISADE_HW_IFACE when one is present.
//!
//! Nothing is implemented yet; see the XDP and offload issues and DESIGN.md §6.
