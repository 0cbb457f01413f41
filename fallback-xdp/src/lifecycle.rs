//! The program on a real interface: attach, atomic replacement, pins, and
//! reading back what is in force, by any later process.
//!
//! Everything lives in bpffs under `/sys/fs/bpf/palisade/<iface>/`:
//!
//! - `link`: the XDP link attaching the current program. The program, and
//!   the per-generation maps only it references (classifier, rules,
//!   buckets, config), live as long as the link does: enforcement survives
//!   the process that applied it.
//! - `counters`, `slot_ids`, `meta`, `blocklist_v4`, `blocklist_v6`,
//!   `log_ring`: maps kept across generations ([`crate::loader::KEPT_MAPS`]). Each rule id
//!   keeps its counter slot for as long as the maps exist, so counters stay
//!   monotonic across policies.
//!
//! A second apply builds and fills the new generation's maps beside the old
//! ones, loads the new program, and then replaces the program of the pinned
//! link in one BPF_LINK_UPDATE (DESIGN §5): a packet runs either the old
//! program with its maps or the new one with its own, never a mix. The old
//! program and its maps are freed by the kernel when the last reference goes
//! (after packets running it are done, as BPF programs are RCU-protected).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, Map, MapData, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
use aya::programs::XdpMode;
use compiler::ir::Policy;

use crate::abi::{self, Counter, LogEvent, Meta, SlotId};
use crate::loader::{sum_counters, Options, Program, Tables, Variant};

/// Where every interface's directory is.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf/palisade";

/// Counter slots the kept maps are created with, at least.
const MIN_SLOTS: u32 = 65_536;

/// The bpffs directory of an interface.
pub fn pin_dir(dev: &str) -> PathBuf {
    Path::new(BPFFS_ROOT).join(dev)
}

/// How the program runs on the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// In the driver, before any socket buffer is built.
    Native,
    /// In the kernel's generic path (slower; used where the driver refuses).
    Generic,
}

impl Mode {
    fn code(self) -> u32 {
        match self {
            Mode::Native => 1,
            Mode::Generic => 2,
        }
    }

    fn from_code(c: u32) -> Option<Mode> {
        match c {
            1 => Some(Mode::Native),
            2 => Some(Mode::Generic),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
        }
    }
}

/// What an apply did.
#[derive(Debug)]
pub struct Applied {
    pub dev: String,
    pub generation: u64,
    pub mode: Mode,
    /// True when an earlier generation was replaced.
    pub replaced: bool,
    /// Set when native mode was refused and generic mode is used.
    pub warning: Option<String>,
    pub build: Duration,
    pub load_and_fill: Duration,
    /// The attach or the link update alone.
    pub switch: Duration,
    pub shape: crate::tree::Shape,
}

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn is_bpffs(path: &str) -> bool {
    let p = std::ffi::CString::new(path).expect("no NUL");
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct we own.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(p.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Pins need bpffs at /sys/fs/bpf; mount it there when it is not (as
/// iproute2 and bpftool do).
fn ensure_bpffs() -> Result<()> {
    const FS: &str = "/sys/fs/bpf";
    if is_bpffs(FS) {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src, target, fstype, opts) = (c("bpf"), c(FS), c("bpf"), c("mode=0700"));
    // SAFETY: mount(2) with NUL-terminated strings we own.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 || !is_bpffs(FS) {
        bail!(
            "{FS} is not a bpffs mount and mounting one failed ({}); mount it: mount -t bpf bpf {FS}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn pinned_map(dir: &Path, name: &str) -> Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening pinned map {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

/// Rule ids by counter slot, as kept in `slot_ids`.
fn read_slot_ids(dir: &Path, used: u64) -> Result<HashMap<String, u32>> {
    let map = pinned_map(dir, "slot_ids")?;
    let ids: Array<MapData, SlotId> = Array::try_from(map)?;
    let mut out = HashMap::new();
    for slot in abi::FIRST_RULE_SLOT..used as u32 {
        let s = ids.get(&slot, 0)?;
        if s.len > 0 {
            let id = String::from_utf8_lossy(&s.id[..s.len as usize]).into_owned();
            out.insert(id, slot);
        }
    }
    Ok(out)
}

fn read_meta(dir: &Path) -> Result<Meta> {
    let m: Array<MapData, Meta> = Array::try_from(pinned_map(dir, "meta")?)?;
    Ok(m.get(&0, 0)?)
}

fn slot_id(id: &str) -> Result<SlotId> {
    let b = id.as_bytes();
    if b.len() > abi::SLOT_ID_MAX as usize {
        bail!(
            "rule id `{id}` is longer than {} bytes, the most the XDP counters keep; shorten it",
            abi::SLOT_ID_MAX
        );
    }
    let mut s = SlotId {
        len: b.len() as u32,
        ..SlotId::default()
    };
    s.id[..b.len()].copy_from_slice(b);
    Ok(s)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Apply `policy` to `dev`: attach (native, else generic with a warning),
/// or atomically replace what is there. `sha256` identifies the policy text
/// for `status`. On any error the previous generation stays in force.
pub fn apply(policy: &Policy, sha256: [u8; 32], dev: &str) -> Result<Applied> {
    let t = Instant::now();
    let tables = Tables::new(policy)?;
    apply_timed(policy, tables, t.elapsed(), sha256, dev)
}

/// [`apply`] with tables built by the caller, e.g.
/// [`Tables::behind_nic`] once a NIC holds part of the policy (the
/// caller's build time is not in [`Applied::build`]).
pub fn apply_tables(policy: &Policy, tables: Tables, sha256: [u8; 32], dev: &str) -> Result<Applied> {
    apply_timed(policy, tables, Duration::ZERO, sha256, dev)
}

fn apply_timed(policy: &Policy, tables: Tables, build: Duration, sha256: [u8; 32], dev: &str) -> Result<Applied> {
    ensure_bpffs()?;
    let dir = pin_dir(dev);
    // Only a directory this call creates is removed on failure: pins kept
    // from earlier generations (counters, the blocklist) stay even when
    // re-attaching after the link went away fails.
    let fresh = !dir.exists();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = apply_in(policy, tables, build, sha256, dev, &dir);
    if result.is_err() && fresh {
        // Nothing was attached: leave nothing behind.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn apply_in(
    policy: &Policy,
    mut tables: Tables,
    build: Duration,
    sha256: [u8; 32],
    dev: &str,
    dir: &Path,
) -> Result<Applied> {
    // Counters pinned by a version with another counter layout cannot be
    // shared with this program.
    if let Ok(info) = aya::maps::MapInfo::from_pin(dir.join("counters")) {
        let want = std::mem::size_of::<Counter>() as u32;
        if info.value_size() != want {
            bail!(
                "the counters pinned for {dev} hold {}-byte values and this version counts in {want}-byte ones; \
                 `palisade detach --dev {dev}` (counters start again) and apply again",
                info.value_size()
            );
        }
    }
    // Slots: ids already counted keep theirs.
    let (known, mut used, previous) = if dir.join("meta").exists() {
        let meta = read_meta(dir)?;
        (read_slot_ids(dir, meta.slots_used)?, meta.slots_used, Some(meta))
    } else {
        (HashMap::new(), abi::FIRST_RULE_SLOT as u64, None)
    };
    used = used.max(abi::FIRST_RULE_SLOT as u64);
    let mut slots = Vec::with_capacity(policy.rules.len());
    let mut new_ids = Vec::new();
    for r in &policy.rules {
        let s = match known.get(&r.id) {
            Some(&s) => s,
            None => {
                let s = used as u32;
                used += 1;
                new_ids.push((s, slot_id(&r.id)?));
                s
            }
        };
        slots.push(s);
    }
    tables.set_slots(&slots);
    let capacity = MIN_SLOTS.max((2 * used as u32).next_power_of_two());

    let t = Instant::now();
    let options = Options {
        pins: Some((dir.to_path_buf(), capacity)),
        variant: Variant::Classifier,
        ..Options::default()
    };
    let mut program = Program::load(&tables, options)?;
    {
        let mut ids: Array<&mut MapData, SlotId> = Array::try_from(program.map_mut("slot_ids")?)?;
        let max = ids.len();
        if used > max as u64 {
            bail!(
                "the pinned counters hold {max} rule ids and this policy needs {used}; \
                 `palisade detach --dev {dev}` and apply again to start new counters"
            );
        }
        for (s, id) in &new_ids {
            ids.set(*s, id, 0)?;
        }
    }
    let load_and_fill = t.elapsed();

    let link_path = dir.join("link");
    let t = Instant::now();
    let (mode, warning, replaced) = if link_path.exists() {
        let pinned = PinnedLink::from_pin(&link_path).context("opening the pinned XDP link")?;
        let link = XdpLink::try_from(FdLink::from(pinned))?;
        let xdp = program.xdp_mut()?;
        let id = xdp
            .attach_to_link(link)
            .context("replacing the program of the XDP link")?;
        // The link stays pinned; this process's handle may go.
        drop(xdp.take_link(id)?);
        let mode = previous.and_then(|m| Mode::from_code(m.mode)).unwrap_or(Mode::Native);
        (mode, None, true)
    } else {
        let xdp = program.xdp_mut()?;
        let (id, mode, warning) = match xdp.attach(dev, XdpMode::Driver) {
            Ok(id) => (id, Mode::Native, None),
            Err(native) => {
                let id = xdp
                    .attach(dev, XdpMode::Skb)
                    .with_context(|| format!("attaching XDP to {dev} (native mode was refused too: {native})"))?;
                let w = format!(
                    "{dev} refused native XDP ({native}); running in generic mode, which sees packets later and costs more"
                );
                (id, Mode::Generic, Some(w))
            }
        };
        let link = FdLink::try_from(xdp.take_link(id)?).map_err(|e| {
            anyhow!("{dev}: the kernel attached XDP without a bpf_link ({e}); Palisade needs Linux 5.9 or later")
        })?;
        link.pin(&link_path)
            .with_context(|| format!("pinning the XDP link at {}", link_path.display()))?;
        (mode, warning, false)
    };
    let switch = t.elapsed();

    let generation = previous.map_or(1, |m| m.generation + 1);
    let meta = Meta {
        generation,
        applied_ns: now_ns(),
        policy_sha256: sha256,
        rules: policy.rules.len() as u32,
        mode: mode.code(),
        slots_used: used,
    };
    let mut m: Array<&mut MapData, Meta> = Array::try_from(program.map_mut("meta")?)?;
    m.set(0, meta, 0)?;
    Ok(Applied {
        dev: dev.to_string(),
        generation,
        mode,
        replaced,
        warning,
        build,
        load_and_fill,
        switch,
        shape: program.shape,
    })
}

/// What is in force on an interface, read from the pins.
#[derive(Debug)]
pub struct Status {
    pub dev: String,
    pub generation: u64,
    pub mode: Option<Mode>,
    pub applied_ns: u64,
    pub policy_sha256: [u8; 32],
    pub rules: u32,
    pub program_id: Option<u32>,
    /// (id, name) of every map the program in force uses: its generation's
    /// own and the kept ones.
    pub maps: Vec<(u32, String)>,
    pub blocklist: usize,
}

fn require_dir(dev: &str) -> Result<PathBuf> {
    let dir = pin_dir(dev);
    if !dir.join("link").exists() {
        bail!(
            "no Palisade program is pinned for {dev} ({} has no link); `palisade apply POLICY --dev {dev}` attaches one",
            dir.display()
        );
    }
    Ok(dir)
}

/// The interface index the pinned XDP link of `dev` is attached to: 0
/// when its interface is gone (the link outlived it), None when no link is
/// pinned. Read with BPF_OBJ_GET and BPF_OBJ_GET_INFO_BY_FD (bpf_link_info's
/// xdp.ifindex, which aya does not expose).
pub fn link_ifindex(dev: &str) -> Result<Option<u32>> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let path = pin_dir(dev).join("link");
    if !path.exists() {
        return Ok(None);
    }
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).context("pin path")?;
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    let get = ObjGet {
        pathname: cpath.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: bpf(2) with an attribute struct we own, sized as passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, &get, std::mem::size_of::<ObjGet>()) };
    if fd < 0 {
        bail!("opening {}: {}", path.display(), std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_link_info: type, id, prog_id, then a union aligned to 8
    // whose xdp member starts with the ifindex.
    let mut info = [0u8; 64];
    let attr = InfoByFd {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: as above; the kernel writes at most info_len bytes to info.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr,
            std::mem::size_of::<InfoByFd>(),
        )
    };
    if rc < 0 {
        bail!("reading the link of {dev}: {}", std::io::Error::last_os_error());
    }
    const BPF_LINK_TYPE_XDP: u32 = 6;
    let kind = u32::from_ne_bytes(info[0..4].try_into().expect("4 bytes"));
    if kind != BPF_LINK_TYPE_XDP {
        bail!("{} is not an XDP link (type {kind})", path.display());
    }
    Ok(Some(u32::from_ne_bytes(info[16..20].try_into().expect("4 bytes"))))
}

/// The id of the map pinned as `name` for `dev`, if one is.
pub fn pinned_map_id(dev: &str, name: &str) -> Option<u32> {
    aya::maps::MapInfo::from_pin(pin_dir(dev).join(name))
        .ok()
        .map(|m| m.id())
}

/// The program id behind the pinned link.
fn link_program_id(dir: &Path) -> Option<u32> {
    let link = FdLink::from(PinnedLink::from_pin(dir.join("link")).ok()?);
    link.info().ok().map(|i| i.program_id())
}

/// The loaded program with this id.
fn loaded_program(id: u32) -> Result<aya::programs::ProgramInfo> {
    for p in aya::programs::loaded_programs() {
        let p = p?;
        if p.id() == id {
            return Ok(p);
        }
    }
    bail!("no loaded BPF program has id {id}")
}

/// (id, name) of the maps program `id` uses.
pub fn program_maps(id: u32) -> Result<Vec<(u32, String)>> {
    let mut out = Vec::new();
    for m in loaded_program(id)?.map_ids()?.unwrap_or_default() {
        if let Ok(info) = aya::maps::MapInfo::from_id(m) {
            out.push((m, info.name_as_str().unwrap_or("").to_string()));
        }
    }
    Ok(out)
}

/// Whether a BPF map with this id still exists.
pub fn map_exists(id: u32) -> bool {
    aya::maps::MapInfo::from_id(id).is_ok()
}

/// Read what is in force on `dev`.
pub fn status(dev: &str) -> Result<Status> {
    let dir = require_dir(dev)?;
    let meta = read_meta(&dir)?;
    let program_id = link_program_id(&dir);
    Ok(Status {
        maps: program_id.map(program_maps).transpose()?.unwrap_or_default(),
        dev: dev.to_string(),
        generation: meta.generation,
        mode: Mode::from_code(meta.mode),
        applied_ns: meta.applied_ns,
        policy_sha256: meta.policy_sha256,
        rules: meta.rules,
        program_id,
        blocklist: block_list(dev)?.len(),
    })
}

/// Counters by id: reserved outcomes and every rule id ever applied on
/// `dev` (retired ids keep their counts), packets and bytes.
pub fn stats(dev: &str) -> Result<Vec<(String, Counter)>> {
    let dir = require_dir(dev)?;
    let meta = read_meta(&dir)?;
    let ids = read_slot_ids(&dir, meta.slots_used)?;
    let c: PerCpuArray<MapData, Counter> = PerCpuArray::try_from(pinned_map(&dir, "counters")?)?;
    let counts = sum_counters(&c, meta.slots_used as u32)?;
    let mut by_slot: Vec<Option<String>> = vec![None; counts.len()];
    for (i, name) in ["@default", "@malformed", "@fragment", "@non-ip", "@blocklist"]
        .iter()
        .enumerate()
    {
        by_slot[i] = Some(name.to_string());
    }
    for (id, s) in ids {
        if let Some(x) = by_slot.get_mut(s as usize) {
            *x = Some(id);
        }
    }
    Ok(by_slot
        .into_iter()
        .zip(counts)
        .filter_map(|(id, c)| id.map(|id| (id, c)))
        .collect())
}

/// The kernel's run-time statistics of the program in force on `dev`
/// (accumulated only while some process holds BPF_ENABLE_STATS, see
/// [`enable_run_time_stats`]): (program id, total run time, runs).
pub fn run_stats(dev: &str) -> Result<(u32, Duration, u64)> {
    let dir = require_dir(dev)?;
    let id = link_program_id(&dir).ok_or_else(|| anyhow!("{dev}: the pinned link has no program"))?;
    let (time, runs) = program_run_stats(id).with_context(|| dev.to_string())?;
    Ok((id, time, runs))
}

/// A reference that keeps a program loaded, and its statistics readable,
/// after a new generation replaces it.
pub struct HeldProgram {
    pub id: u32,
    _fd: aya::programs::ProgramFd,
}

/// Hold program `id` (see [`HeldProgram`]).
pub fn hold_program(id: u32) -> Result<HeldProgram> {
    Ok(HeldProgram {
        id,
        _fd: loaded_program(id)?.fd()?,
    })
}

/// The run-time statistics of program `id`: (total run time, runs).
pub fn program_run_stats(id: u32) -> Result<(Duration, u64)> {
    let p = loaded_program(id)?;
    Ok((p.run_time(), p.run_count()))
}

/// Make the kernel account BPF programs' run time for as long as the
/// returned descriptor is open (BPF_ENABLE_STATS; needs CAP_SYS_ADMIN).
pub fn enable_run_time_stats() -> Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| anyhow!("BPF_ENABLE_STATS: {e}"))
}

/// The maps of the generation in force that hold the policy (config,
/// trees, nodes, leaf entries, rules; not the buckets, clock or per-CPU
/// scratch the program writes): a SHA-256 over their contents as the
/// kernel holds them, to tell a changed entry from what was applied.
pub fn tables_digest(dev: &str) -> Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let dir = require_dir(dev)?;
    let id = link_program_id(&dir).ok_or_else(|| anyhow!("{dev}: the pinned link has no program"))?;
    let maps = program_maps(id)?;
    let mut h = Sha256::new();
    for name in ["config", "trees", "nodes", "leaf_entries", "rules"] {
        let Some((map_id, _)) = maps.iter().find(|(_, n)| n == name) else {
            bail!("{dev}: the program in force has no `{name}` map");
        };
        let data = MapData::from_id(*map_id).with_context(|| format!("opening map {name} (id {map_id})"))?;
        h.update(name.as_bytes());
        let map = Map::from_map_data(data)?;
        match name {
            "config" => hash_array::<abi::Config>(map, &mut h)?,
            "trees" => hash_array::<abi::Tree>(map, &mut h)?,
            "nodes" => hash_array::<abi::Node>(map, &mut h)?,
            "leaf_entries" => hash_array::<abi::LeafEntry>(map, &mut h)?,
            _ => hash_array::<abi::RuleConf>(map, &mut h)?,
        }
    }
    Ok(h.finalize().into())
}

fn hash_array<V: aya::Pod>(map: Map, h: &mut sha2::Sha256) -> Result<()> {
    use sha2::Digest;
    let a: Array<MapData, V> = Array::try_from(map)?;
    for i in 0..a.len() {
        let v = a.get(&i, 0)?;
        // SAFETY: V is plain old data (aya::Pod); its bytes are as read
        // from the kernel, padding included.
        let bytes = unsafe { std::slice::from_raw_parts(&v as *const V as *const u8, std::mem::size_of::<V>()) };
        h.update(bytes);
    }
    Ok(())
}

/// Detach from `dev` and remove every pin: enforcement stops.
pub fn detach(dev: &str) -> Result<()> {
    let dir = require_dir(dev)?;
    // Removing the link's last reference detaches the program.
    std::fs::remove_file(dir.join("link")).context("unpinning the XDP link")?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

/// A blocklist prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;

    /// `ADDR/LEN` or a bare address (a host prefix). Host bits must be zero.
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
        let addr: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("`{l}` is not a prefix length for {addr} (0-{max})"))?,
        };
        let bits: u128 = match addr {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        };
        let host = if len == max {
            0
        } else {
            bits & ((1u128 << (max - len)) - 1)
        };
        if host != 0 {
            return Err(format!("{s} has host bits set; did you mean the network address?"));
        }
        Ok(Prefix { addr, len })
    }
}

/// Add `p` to `dev`'s blocklist: effective for the next packet.
pub fn block_add(dev: &str, p: Prefix) -> Result<()> {
    let dir = require_dir(dev)?;
    match p.addr {
        IpAddr::V4(a) => {
            let mut t: LpmTrie<MapData, [u8; 4], u8> = LpmTrie::try_from(pinned_map(&dir, "blocklist_v4")?)?;
            t.insert(&LpmKey::new(p.len as u32, a.octets()), 1, 0)?;
        }
        IpAddr::V6(a) => {
            let mut t: LpmTrie<MapData, [u8; 16], u8> = LpmTrie::try_from(pinned_map(&dir, "blocklist_v6")?)?;
            t.insert(&LpmKey::new(p.len as u32, a.octets()), 1, 0)?;
        }
    }
    Ok(())
}

/// Remove `p` from `dev`'s blocklist; an error if it is not there.
pub fn block_del(dev: &str, p: Prefix) -> Result<()> {
    let dir = require_dir(dev)?;
    let r = match p.addr {
        IpAddr::V4(a) => {
            let mut t: LpmTrie<MapData, [u8; 4], u8> = LpmTrie::try_from(pinned_map(&dir, "blocklist_v4")?)?;
            t.remove(&LpmKey::new(p.len as u32, a.octets()))
        }
        IpAddr::V6(a) => {
            let mut t: LpmTrie<MapData, [u8; 16], u8> = LpmTrie::try_from(pinned_map(&dir, "blocklist_v6")?)?;
            t.remove(&LpmKey::new(p.len as u32, a.octets()))
        }
    };
    r.map_err(|_| anyhow!("{p} is not in the blocklist of {dev}"))
}

/// Every prefix in `dev`'s blocklist.
pub fn block_list(dev: &str) -> Result<Vec<Prefix>> {
    let dir = require_dir(dev)?;
    let mut out = Vec::new();
    let t: LpmTrie<MapData, [u8; 4], u8> = LpmTrie::try_from(pinned_map(&dir, "blocklist_v4")?)?;
    for k in t.keys() {
        let k = k?;
        out.push(Prefix {
            addr: IpAddr::from(k.data()),
            len: k.prefix_len() as u8,
        });
    }
    let t: LpmTrie<MapData, [u8; 16], u8> = LpmTrie::try_from(pinned_map(&dir, "blocklist_v6")?)?;
    for k in t.keys() {
        let k = k?;
        out.push(Prefix {
            addr: IpAddr::from(k.data()),
            len: k.prefix_len() as u8,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_refuse_host_bits() {
        let p: Prefix = "198.51.100.0/24".parse().unwrap();
        assert_eq!(p.len, 24);
        assert_eq!("2001:db8::1".parse::<Prefix>().unwrap().len, 128);
        assert!("198.51.100.1/24".parse::<Prefix>().unwrap_err().contains("host bits"));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nonsense".parse::<Prefix>().is_err());
        assert_eq!("0.0.0.0/0".parse::<Prefix>().unwrap().len, 0);
    }
}

/// One sampled decision, with its rule id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// CLOCK_REALTIME nanoseconds (the kernel's monotonic time moved by the
    /// offset between the clocks when the event was read).
    pub time_ns: u64,
    /// The kernel's CLOCK_MONOTONIC time of the decision (for a rate-limit
    /// rule, the time its bucket was charged at).
    pub ktime_ns: u64,
    pub id: String,
    pub verdict: compiler::ir::Verdict,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ports: Option<(u16, u16)>,
}

/// Reads the decision log of an interface.
pub struct LogReader {
    dir: PathBuf,
    ring: aya::maps::RingBuf<MapData>,
    ids: HashMap<u32, String>,
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    // SAFETY: clock_gettime into a zeroed timespec we own.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(clock, &mut ts);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

impl LogReader {
    pub fn open(dev: &str) -> Result<LogReader> {
        let dir = require_dir(dev)?;
        let ring = aya::maps::RingBuf::try_from(pinned_map(&dir, "log_ring")?)?;
        let mut r = LogReader {
            dir,
            ring,
            ids: HashMap::new(),
        };
        r.reload_ids()?;
        Ok(r)
    }

    fn reload_ids(&mut self) -> Result<()> {
        let meta = read_meta(&self.dir)?;
        self.ids = read_slot_ids(&self.dir, meta.slots_used)?
            .into_iter()
            .map(|(id, s)| (s, id))
            .collect();
        Ok(())
    }

    /// The next logged decision, if one is waiting.
    pub fn next_decision(&mut self) -> Result<Option<Logged>> {
        let Some(ev) = self.ring.next().and_then(|item| LogEvent::from_bytes(&item)) else {
            return Ok(None);
        };
        if !self.ids.contains_key(&ev.slot) {
            // A rule of a generation applied after this reader opened.
            self.reload_ids()?;
        }
        let id = self
            .ids
            .get(&ev.slot)
            .cloned()
            .unwrap_or_else(|| format!("@slot-{}", ev.slot));
        let addr = |b: [u8; 16]| -> IpAddr {
            if ev.family == 6 {
                IpAddr::from(b)
            } else {
                IpAddr::from([b[0], b[1], b[2], b[3]])
            }
        };
        let offset = clock_ns(libc::CLOCK_REALTIME).saturating_sub(clock_ns(libc::CLOCK_MONOTONIC));
        Ok(Some(Logged {
            time_ns: ev.ktime_ns + offset,
            ktime_ns: ev.ktime_ns,
            id,
            verdict: if ev.verdict as u32 == abi::VERDICT_ALLOW {
                compiler::ir::Verdict::Allow
            } else {
                compiler::ir::Verdict::Deny
            },
            src: addr(ev.src),
            dst: addr(ev.dst),
            proto: ev.proto,
            ports: (ev.has_ports != 0).then_some((ev.src_port, ev.dst_port)),
        }))
    }
}
