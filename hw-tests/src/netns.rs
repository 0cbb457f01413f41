//! A veth pair between two network namespaces made for one test, and a
//! sender of raw Ethernet frames on the peer side.
//!
//! The "device" end (`dev` in namespace `dev_ns`) is where a data plane is
//! attached; frames written on the "peer" end (`peer` in `peer_ns`) arrive
//! on it. IPv6 is disabled on both ends before they come up and neither has
//! an address, so the kernel sends nothing of its own: every frame the
//! device end sees was sent by the test. Dropping the pair deletes both
//! namespaces (and with them the veths).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// A UDP frame 192.0.2.1:40000 → 192.0.2.2:`dst_port` whose payload is
/// `seq`, for tests that count frames through a data plane.
pub fn udp_frame(dst_port: u16, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(40000, dst_port)
        .write(&mut out, &seq.to_be_bytes())
        .expect("build frame");
    out
}

/// Two namespaces joined by a veth pair, deleted on drop.
pub struct VethPair {
    pub dev_ns: String,
    pub peer_ns: String,
    pub dev: String,
    pub peer: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl VethPair {
    /// A fresh pair; `tag` (a few letters) keeps names unique per test. Names
    /// fit IFNAMSIZ: `<tag><pid % 100000>a` / `...b`.
    pub fn new(tag: &str) -> Result<VethPair, String> {
        let id = format!("{tag}{}", std::process::id() % 100_000);
        let p = VethPair {
            dev_ns: format!("palisade-{id}-d"),
            peer_ns: format!("palisade-{id}-p"),
            dev: format!("{id}a"),
            peer: format!("{id}b"),
        };
        if p.dev.len() > 15 {
            return Err(format!("interface name {} is too long; use a shorter tag", p.dev));
        }
        ip(&["netns", "add", &p.dev_ns])?;
        ip(&["netns", "add", &p.peer_ns])?;
        ip(&[
            "link", "add", &p.dev, "netns", &p.dev_ns, "type", "veth", "peer", "name", &p.peer, "netns", &p.peer_ns,
        ])?;
        for (ns, name) in [(&p.dev_ns, &p.dev), (&p.peer_ns, &p.peer)] {
            for key in ["all", "default", name.as_str()] {
                let path = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                let out = Command::new("ip")
                    .args(["netns", "exec", ns, "sysctl", "-qw", &path])
                    .output()
                    .map_err(|e| format!("sysctl: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "sysctl {path} in {ns}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
            ip(&["-n", ns, "link", "set", name, "up"])?;
        }
        Ok(p)
    }

    /// A command run in the device's network namespace only (mounts, and so
    /// bpffs pins, stay the host's), like `nsenter --net`.
    pub fn in_dev_ns(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.dev_ns)).arg(program);
        c
    }

    /// A sender of frames on the peer end.
    pub fn sender(&self) -> Result<Sender, String> {
        Sender::open(&self.peer_ns, &self.peer)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.dev_ns]);
        let _ = ip(&["netns", "del", &self.peer_ns]);
    }
}

/// An AF_PACKET socket bound to an interface of another namespace. The
/// socket keeps its namespace after the creating thread returns to its own.
pub struct Sender {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

impl Sender {
    /// A sender on interface `iface` of namespace `ns` (a name under /run/netns).
    pub fn open(ns: &str, iface: &str) -> Result<Sender, String> {
        let ns_path = format!("/run/netns/{ns}");
        let iface = iface.to_string();
        // setns changes only the calling thread: do it in a thread of its own.
        std::thread::spawn(move || -> Result<Sender, String> {
            let nsf = File::open(&ns_path).map_err(|e| format!("{ns_path}: {e}"))?;
            // SAFETY: plain syscalls on descriptors owned here.
            unsafe {
                if libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(format!("setns {ns_path}: {}", std::io::Error::last_os_error()));
                }
                let name = std::ffi::CString::new(iface.clone()).map_err(|e| e.to_string())?;
                let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
                if ifindex == 0 {
                    return Err(format!("no interface {iface} in {ns_path}"));
                }
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                if fd < 0 {
                    return Err(format!("AF_PACKET socket: {}", std::io::Error::last_os_error()));
                }
                Ok(Sender {
                    fd: std::os::fd::FromRawFd::from_raw_fd(fd),
                    ifindex,
                })
            }
        })
        .join()
        .map_err(|_| "the namespace thread panicked".to_string())?
    }

    /// Send one frame (at least 14 bytes, as the kernel requires).
    pub fn send(&self, frame: &[u8]) -> Result<(), String> {
        match self.send_through_egress(frame)? {
            true => Ok(()),
            false => Err("sendto: dropped on the way out (ENOBUFS)".into()),
        }
    }

    /// Send one frame through an egress that may drop it (a tc filter on
    /// the sending interface): Ok(false) when the kernel reports the frame
    /// dropped there (ENOBUFS), Ok(true) when it left.
    pub fn send_through_egress(&self, frame: &[u8]) -> Result<bool, String> {
        // SAFETY: sendto with a sockaddr_ll and a buffer we own.
        unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = self.ifindex;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            let n = libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            if n != frame.len() as isize {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    return Ok(false);
                }
                return Err(format!("sendto: {e}"));
            }
        }
        Ok(true)
    }
}

/// Run `f` on a thread of its own that has entered network namespace `ns`
/// (a name under /run/netns); mounts stay the caller's, so bpffs pins are
/// shared. Panics in `f` reach the caller.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    let handle = std::thread::spawn(move || {
        let nsf = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread with a descriptor owned here.
        let rc = unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    });
    match handle.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}
