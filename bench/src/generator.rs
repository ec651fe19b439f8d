//! Driving the frame generator (bench-ebpf `bench_gen`): `BPF_PROG_TEST_RUN`
//! with `BPF_F_TEST_XDP_LIVE_FRAMES` (kernel 5.18 or later) runs it on
//! frames made from a template and transmits every frame it returns
//! `XDP_TX` for out of the interface given as the context's ingress
//! interface. On a veth that means into the peer's receive ring, exactly
//! where a NIC would put a frame from the wire.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use aya::Ebpf;
use aya::maps::{Array, MapData};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};
use iplock_bench_ebpf::{CFG_PORT_COUNT, CFG_SRC_BASE, CFG_SRC_COUNT, STATE_BAD, STATE_FRAMES};

use crate::frames;
use crate::objects;

/// Frames per batch: the kernel's default (NAPI_POLL_WEIGHT); at most 256.
const BATCH: u32 = 64;

pub struct Generator {
    ebpf: Ebpf,
}

/// What one generator run took.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// Wall time of the whole system call.
    pub wall: Duration,
    /// The kernel's own figure: time inside its run loop divided by the
    /// frames, in whole ns. It covers everything done on this CPU for each
    /// frame, including the receiver's softirq work that runs when the
    /// loop re-enables bottom halves after each batch, and leaves out the
    /// time the thread was scheduled away.
    pub kernel_ns_per_frame: f64,
}

/// Which sources the generated frames come from.
#[derive(Clone, Copy, Debug)]
pub struct Sources {
    /// Low 32 bits of the first source address (all of it for IPv4).
    pub base: u32,
    /// Distinct addresses, cycled through frame by frame.
    pub count: u32,
    /// Distinct source ports per address.
    pub ports: u32,
}

impl Generator {
    pub fn load() -> Result<Generator> {
        let mut ebpf = Ebpf::load(objects::GEN).context("loading the generator object")?;
        let prog: &mut Xdp = ebpf
            .program_mut("bench_gen")
            .context("the generator object has no bench_gen")?
            .try_into()
            .context("bench_gen is not an XDP program")?;
        prog.load().context("the kernel refused the generator")?;
        Ok(Generator { ebpf })
    }

    fn prog(&self) -> Result<&Xdp> {
        self.ebpf
            .program("bench_gen")
            .context("no bench_gen")?
            .try_into()
            .context("bench_gen is not an XDP program")
    }

    fn config(&mut self) -> Result<Array<&mut MapData, u32>> {
        Array::try_from(self.ebpf.map_mut("GEN_CONFIG").context("no GEN_CONFIG")?)
            .context("GEN_CONFIG is not an array of u32")
    }

    fn state(&self) -> Result<Array<&MapData, u64>> {
        Array::try_from(self.ebpf.map("GEN_STATE").context("no GEN_STATE")?)
            .context("GEN_STATE is not an array of u64")
    }

    pub fn set_sources(&mut self, s: Sources) -> Result<()> {
        let mut c = self.config()?;
        c.set(CFG_SRC_BASE, s.base, 0)?;
        c.set(CFG_SRC_COUNT, s.count, 0)?;
        c.set(CFG_PORT_COUNT, s.ports, 0)?;
        Ok(())
    }

    /// Frames filled and frames refused so far.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let s = self.state()?;
        Ok((s.get(&STATE_FRAMES, 0)?, s.get(&STATE_BAD, 0)?))
    }

    /// Runs the generator `n` times without transmitting and checks what it
    /// made: valid checksums, the template's destination and flags, and the
    /// source address and port sequence it promises.
    pub fn self_check(&mut self, template: &[u8], s: Sources, n: u32) -> Result<()> {
        self.set_sources(s)?;
        let want =
            frames::check(template).map_err(|e| anyhow::anyhow!("the template is broken: {e}"))?;
        let (first, _) = self.counts()?;
        for i in 0..n {
            let mut out = vec![0u8; template.len()];
            let r = self.prog()?.test_run(TestRunOptions {
                data_in: Some(template),
                data_out: Some(&mut out),
                ..TestRunOptions::new()
            })?;
            ensure!(
                r.return_value == crate::XDP_TX,
                "the generator returned {} instead of XDP_TX",
                r.return_value
            );
            let got = frames::check(&out[..r.data_size_out as usize])
                .map_err(|e| anyhow::anyhow!("generated frame {i}: {e}"))?;
            let k = first + u64::from(i);
            let idx = (k % u64::from(s.count)) as u32;
            let port = 1024 + ((k / u64::from(s.count)) % u64::from(s.ports)) as u16;
            let low = s.base.wrapping_add(idx);
            let src_low = match got.src {
                std::net::IpAddr::V4(a) => u32::from(a),
                std::net::IpAddr::V6(a) => (u128::from(a) & 0xffff_ffff) as u32,
            };
            ensure!(
                src_low == low && got.sport == port && got.seq == k as u32,
                "generated frame {i} is {got:?}, expected source ...{low:#x} port {port} seq {k}"
            );
            ensure!(
                got.dport == want.dport && got.flags == want.flags,
                "generated frame {i} changed the destination port or flags: {got:?}"
            );
        }
        Ok(())
    }

    /// Transmits `n` frames made from `template` out of interface `ifindex`
    /// of the calling thread's namespace.
    pub fn send(&self, template: &[u8], ifindex: u32, n: u32) -> Result<Sent> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex. The kernel wants data_end equal
        // to the frame length and no metadata.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(template.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let (before, bad_before) = self.counts()?;
        let start = Instant::now();
        let result = self
            .prog()?
            .test_run(TestRunOptions {
                data_in: Some(template),
                ctx_in: Some(&ctx),
                repeat: n,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::new()
            })
            .context("BPF_PROG_TEST_RUN with live frames (needs kernel 5.18 or later)")?;
        let wall = start.elapsed();
        let (after, bad_after) = self.counts()?;
        if bad_after != bad_before {
            bail!("the generator refused {} frames", bad_after - bad_before);
        }
        ensure!(
            after - before == u64::from(n),
            "the generator filled {} frames, not {n}",
            after - before
        );
        Ok(Sent {
            wall,
            kernel_ns_per_frame: result.duration.as_nanos() as f64,
        })
    }
}
