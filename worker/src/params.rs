//! Groth parameters for small sectors: find them in the parameter cache or generate them.
//!
//! Production parameters come from a trusted setup and are downloaded; here nothing can be
//! downloaded, and random parameters are valid for proofs this cluster makes and checks itself.
//! They are generated from a fixed seed so that every machine of a cluster derives byte-identical
//! files: a proof made on one worker verifies on the manager.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bellperson::groth16;
use blstrs::Bls12;
use damocles_actors::metrics;
use damocles_proof_types as proof_types;
use filecoin_proofs::constants::{DefaultPieceHasher, SectorShape2KiB, SectorShape8MiB};
use filecoin_proofs::parameters::{public_params, window_post_public_params};
use filecoin_proofs_api::{RegisteredPoStProof, RegisteredSealProof, RegisteredUpdateProof};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use storage_proofs_core::compound_proof::CompoundProof;
use storage_proofs_core::merkle::MerkleTreeTrait;
use storage_proofs_porep::stacked::{StackedCompound, StackedDrg};
use storage_proofs_post::fallback::{FallbackPoSt, FallbackPoStCircuit, FallbackPoStCompound};
use storage_proofs_update::{
    EmptySectorUpdate, EmptySectorUpdateCircuit, EmptySectorUpdateCompound,
};
use tracing::info;

/// Seed of the cluster-wide deterministic parameter generator ("damocles-local-params").
const SEED: [u8; 32] = *b"damocles-local-params-v1\0\0\0\0\0\0\0\0";

/// Largest sector size whose parameters are generated locally (8MiB); bigger ones must be
/// provided by the operator.
const MAX_GENERATED_SECTOR: u64 = 8 << 20;

/// Which circuit a parameter file belongs to.
#[derive(Clone, Copy, Debug)]
pub enum Circuit {
    Seal(RegisteredSealProof),
    WindowPost(RegisteredPoStProof),
    /// Snap-up's update proof.
    Update(RegisteredUpdateProof),
}

impl Circuit {
    pub fn params_path(self) -> Result<PathBuf> {
        match self {
            Circuit::Seal(p) => p.cache_params_path(),
            Circuit::WindowPost(p) => p.cache_params_path(),
            Circuit::Update(p) => Ok(proof_types::update_param_files(p)
                .map_err(|e| anyhow!(e))?
                .0),
        }
    }

    fn vk_path(self) -> Result<PathBuf> {
        match self {
            Circuit::Seal(p) => p.cache_verifying_key_path(),
            Circuit::WindowPost(p) => p.cache_verifying_key_path(),
            Circuit::Update(p) => Ok(proof_types::update_param_files(p)
                .map_err(|e| anyhow!(e))?
                .1),
        }
    }

    pub fn sector_size(self) -> u64 {
        match self {
            Circuit::Seal(p) => u64::from(p.sector_size()),
            Circuit::WindowPost(p) => u64::from(p.sector_size()),
            Circuit::Update(p) => u64::from(p.sector_size()),
        }
    }

    /// About how long generating it takes here: measured on 2 cores (2KiB only), scaled to
    /// this machine's cores (the generation runs on all of them).
    fn expected(self) -> Option<Duration> {
        let on_two_cores: u64 = match (self, self.sector_size()) {
            (Circuit::Seal(_), 2048) => 720,
            (Circuit::Update(_), 2048) => 600,
            (Circuit::WindowPost(_), 2048) => 10,
            _ => return None,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
        Some(Duration::from_secs(on_two_cores * 2 / cores.max(1)))
    }

    pub fn describe(self) -> String {
        match self {
            Circuit::Seal(p) => format!("PoRep (C2) {:?}", p),
            Circuit::WindowPost(p) => format!("WindowPoSt {:?}", p),
            Circuit::Update(p) => format!("snap-up update {:?}", p),
        }
    }
}

/// Every circuit a worker proves for sectors of seal proof `code`, quickest to generate first.
pub fn circuits_of_seal(code: u64) -> Result<[Circuit; 3]> {
    Ok([
        Circuit::WindowPost(proof_types::window_post_of_seal(code).map_err(|e| anyhow!(e))?),
        Circuit::Update(proof_types::update_of_seal(code).map_err(|e| anyhow!(e))?),
        Circuit::Seal(proof_types::seal_proof(code).map_err(|e| anyhow!(e))?),
    ])
}

/// `damocles-worker params`: PoRep, WindowPoSt and snap-up parameters for each size, generated
/// when missing; prints where they are.
pub fn ensure_for_sizes(sizes: &[String]) -> Result<()> {
    for size in sizes {
        let code = proof_types::seal_proof_for_size(size).map_err(|e| anyhow!(e))?;
        for circuit in circuits_of_seal(code)? {
            ensure(circuit)?;
            println!("{}", circuit.params_path()?.display());
        }
    }
    Ok(())
}

/// True when both the parameter and the verifying-key files are present.
pub fn present(circuit: Circuit) -> Result<bool> {
    Ok(circuit.params_path()?.exists() && circuit.vk_path()?.exists())
}

/// Makes sure the parameters of `circuit` are in the cache, generating them when the sector size
/// allows; a missing file for a larger size is an error naming the file.
pub fn ensure(circuit: Circuit) -> Result<()> {
    if present(circuit)? {
        return Ok(());
    }
    let params_path = circuit.params_path()?;
    if circuit.sector_size() > MAX_GENERATED_SECTOR {
        return Err(anyhow!(
            "no cached parameters found at {} and parameters for {} byte sectors are not generated locally: copy them into the parameter cache",
            params_path.display(),
            circuit.sector_size()
        ));
    }
    let dir = params_path
        .parent()
        .ok_or_else(|| anyhow!("parameter path {} has no parent", params_path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("create parameter cache {}", dir.display()))?;
    // One generator per machine: a second process waits for the first instead of racing it.
    let lock_path = params_path.with_extension("generating");
    let _lock = GenerationLock::acquire(&lock_path)?;
    if present(circuit)? {
        return Ok(());
    }
    let expected = match circuit {
        Circuit::Seal(_) => "about 1.1 GB, about 12 minutes on 2 cores, 5 GB of memory",
        Circuit::WindowPost(_) => "about 12 MB, a few seconds",
        Circuit::Update(_) => "about 650 MB, about 10 minutes on 2 cores",
    };
    info!(
        circuit = %circuit.describe(),
        path = %params_path.display(),
        expected,
        "generating missing Groth parameters (once per machine, deterministic seed)"
    );
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let ticker = spawn_progress_ticker(circuit, start, done.clone());
    let name = circuit.describe();
    let label = [("circuit", name.as_str())];
    metrics::set("damocles_worker_params_generating", &label, 1.0);
    let params = generate(circuit);
    metrics::set("damocles_worker_params_generating", &label, 0.0);
    let took = start.elapsed().as_secs_f64();
    metrics::set("damocles_worker_params_generation_seconds", &label, took);
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    let params = params?;
    write_atomically(&params_path, |w| params.write(w))?;
    write_atomically(&circuit.vk_path()?, |w| params.vk.write(w))?;
    for path in [params_path.clone(), circuit.vk_path()?] {
        let d = digest(&path)?;
        write_atomically(&digest_record(&path), |w| w.write_all(d.as_bytes()))?;
    }
    let size = fs::metadata(&params_path).map(|m| m.len()).unwrap_or(0);
    info!(
        circuit = %circuit.describe(),
        path = %params_path.display(),
        bytes = size,
        elapsed = ?start.elapsed(),
        "Groth parameters generated"
    );
    Ok(())
}

/// BLAKE2b digests (the first 32 hex digits, as the proofs library's `parameters.json` records
/// them) of the files this generator writes for 2KiB sectors. The generator is deterministic, so
/// every machine of a cluster holds exactly these; a test checks them against generated files.
pub const GENERATED_2KIB: &[(&str, &str)] = &[
    (
        "v28-proof-of-spacetime-fallback-merkletree-poseidon_hasher-8-0-0-0170db1f394b35d995252228ee359194b13199d259380541dc529fb0099096b0.params",
        "0263f5af7d3b0493cc06aaca74f6a94b",
    ),
    (
        "v28-proof-of-spacetime-fallback-merkletree-poseidon_hasher-8-0-0-0170db1f394b35d995252228ee359194b13199d259380541dc529fb0099096b0.vk",
        "53b20ff7ae360ca91c6afae62d178186",
    ),
    (
        "v28-empty-sector-update-merkletree-poseidon_hasher-8-0-0-fb9e095bebdd77511c0269b967b4d87ba8b8a525edaa0e165de23ba454510194.params",
        "f3850c59e3790f5cd63d93de5b6d0352",
    ),
    (
        "v28-empty-sector-update-merkletree-poseidon_hasher-8-0-0-fb9e095bebdd77511c0269b967b4d87ba8b8a525edaa0e165de23ba454510194.vk",
        "8cb1e1116e71ab7fdd289c13ce254d78",
    ),
    (
        "v28-stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-032d3138d22506ec0082ed72b2dcba18df18477904e35bafee82b3793b06832f.params",
        "4dcdeaa017748186e021aac7f296ed2c",
    ),
    (
        "v28-stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-032d3138d22506ec0082ed72b2dcba18df18477904e35bafee82b3793b06832f.vk",
        "d0d248646186725b2ffaccf10a8507bb",
    ),
];

/// Why a circuit's parameter files cannot be used as they are, and what to do about it.
#[derive(Debug)]
pub struct Unverified {
    pub what: String,
    pub fix: String,
}

/// A file's digest as the proofs library's `parameters.json` records one.
pub fn digest(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut state = blake2b_simd::State::new();
    std::io::copy(&mut file, &mut state).with_context(|| format!("read {}", path.display()))?;
    Ok(state.finalize().to_hex()[..32].to_string())
}

/// Where the generator records the digest of a file it wrote (`<file>.digest`).
fn digest_record(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".digest");
    PathBuf::from(name)
}

/// `damocles-worker doctor`: the circuit's parameter and verifying-key files are present, and
/// each is the published file, this cluster's generator's (2KiB), or the one generated on this
/// machine (its recorded digest); says which.
pub fn verify(circuit: Circuit) -> std::result::Result<String, Unverified> {
    let size = damocles_actors::size::format_size(circuit.sector_size());
    let fix = if circuit.sector_size() <= MAX_GENERATED_SECTOR {
        format!("`damocles-worker params --sector-size {size}` makes them")
    } else {
        format!(
            "copy the published files into the parameter cache ({})",
            storage_proofs_core::parameter_cache::parameter_cache_dir().display()
        )
    };
    let unverified = |what: String| Unverified {
        what,
        fix: fix.clone(),
    };
    let paths = [circuit.params_path(), circuit.vk_path()]
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .map_err(|e| unverified(format!("{e:#}")))?;
    let mut origins: Vec<&str> = Vec::new();
    for path in &paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !path.exists() {
            return Err(unverified(format!("{} is missing", path.display())));
        }
        let d = digest(path).map_err(|e| unverified(format!("{e:#}")))?;
        let published = storage_proofs_core::parameter_cache::PARAMETERS
            .get(name)
            .map(|p| p.digest.as_str());
        let recorded = fs::read_to_string(digest_record(path)).ok();
        let origin = if published == Some(d.as_str()) {
            "the published parameters"
        } else if GENERATED_2KIB.contains(&(name, d.as_str())) {
            "this cluster's generator"
        } else if recorded.as_deref().map(str::trim) == Some(d.as_str()) {
            "the digest recorded when this machine generated it"
        } else {
            return Err(Unverified {
                what: format!(
                    "{} has digest {d}, which is neither the published one{} nor this \
                     cluster's generator's: it is damaged, or from another generator",
                    path.display(),
                    published.map(|p| format!(" ({p})")).unwrap_or_default()
                ),
                fix: format!("delete it, then {fix}"),
            });
        };
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(format!(
        "{} and its verifying key match {}",
        paths[0].display(),
        origins.join(" and ")
    ))
}

fn spawn_progress_ticker(
    circuit: Circuit,
    start: Instant,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::IsTerminal;
    // On a terminal one line, redrawn every second; in a log, a line every 30 s.
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(30)
    };
    std::thread::spawn(move || {
        let name = circuit.describe();
        let expected = circuit.expected();
        let mut last = Instant::now();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            let line = progress(start.elapsed(), expected);
            if terminal {
                eprint!("\r\x1b[2Kgenerating Groth parameters of {name}: {line}");
                let _ = std::io::Write::flush(&mut std::io::stderr());
            } else {
                info!(circuit = %name, progress = %line, "still generating Groth parameters");
            }
        }
        if terminal {
            eprintln!();
        }
    })
}

/// `3m 12s, about 8m 48s left`; past the estimate, `13m 0s, longer than the usual 12m 0s`
/// (a busy machine); without one, the time so far.
pub fn progress(elapsed: Duration, expected: Option<Duration>) -> String {
    let d = |t: Duration| {
        let s = t.as_secs();
        if s >= 60 {
            format!("{}m {}s", s / 60, s % 60)
        } else {
            format!("{s}s")
        }
    };
    match expected {
        Some(e) if elapsed < e => format!("{}, about {} left", d(elapsed), d(e - elapsed)),
        Some(e) => format!("{}, longer than the usual {}", d(elapsed), d(e)),
        None => format!("{} so far (no estimate for this size)", d(elapsed)),
    }
}

fn generate(circuit: Circuit) -> Result<groth16::Parameters<Bls12>> {
    let mut rng = ChaCha20Rng::from_seed(SEED);
    match circuit {
        Circuit::Seal(proof) => {
            let config = proof.as_v1_config();
            if u64::from(proof.sector_size()) == 2048 {
                seal_params::<SectorShape2KiB>(&config, &mut rng)
            } else {
                seal_params::<SectorShape8MiB>(&config, &mut rng)
            }
        }
        Circuit::WindowPost(proof) => {
            let config = proof.as_v1_config();
            if u64::from(proof.sector_size()) == 2048 {
                post_params::<SectorShape2KiB>(&config, &mut rng)
            } else {
                post_params::<SectorShape8MiB>(&config, &mut rng)
            }
        }
        Circuit::Update(proof) => {
            let size = u64::from(proof.sector_size());
            if size == 2048 {
                update_params::<SectorShape2KiB>(size, &mut rng)
            } else {
                update_params::<SectorShape8MiB>(size, &mut rng)
            }
        }
    }
}

fn update_params<Tree>(
    sector_size: u64,
    rng: &mut ChaCha20Rng,
) -> Result<groth16::Parameters<Bls12>>
where
    Tree: 'static + MerkleTreeTrait<Hasher = storage_proofs_update::constants::TreeRHasher>,
{
    let pp = storage_proofs_update::PublicParams::from_sector_size(sector_size);
    let circuit = <EmptySectorUpdateCompound<Tree> as CompoundProof<
        EmptySectorUpdate<Tree>,
        EmptySectorUpdateCircuit<Tree>,
    >>::blank_circuit(&pp);
    Ok(groth16::generate_random_parameters::<Bls12, _, _>(
        circuit, rng,
    )?)
}

fn seal_params<Tree: 'static + MerkleTreeTrait>(
    config: &filecoin_proofs::PoRepConfig,
    rng: &mut ChaCha20Rng,
) -> Result<groth16::Parameters<Bls12>> {
    let pp = public_params::<Tree>(config)?;
    let circuit = <StackedCompound<Tree, DefaultPieceHasher> as CompoundProof<
        StackedDrg<'_, Tree, DefaultPieceHasher>,
        _,
    >>::blank_circuit(&pp);
    Ok(groth16::generate_random_parameters::<Bls12, _, _>(
        circuit, rng,
    )?)
}

fn post_params<Tree: 'static + MerkleTreeTrait>(
    config: &filecoin_proofs::PoStConfig,
    rng: &mut ChaCha20Rng,
) -> Result<groth16::Parameters<Bls12>> {
    let pp = window_post_public_params::<Tree>(config)?;
    let circuit = <FallbackPoStCompound<Tree> as CompoundProof<
        FallbackPoSt<'_, Tree>,
        FallbackPoStCircuit<Tree>,
    >>::blank_circuit(&pp);
    Ok(groth16::generate_random_parameters::<Bls12, _, _>(
        circuit, rng,
    )?)
}

/// Writes through a temporary file and renames, so a reader never sees half a file.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = path.with_extension("partial");
    let file = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut w = BufWriter::new(file);
    write(&mut w).with_context(|| format!("write {}", tmp.display()))?;
    w.flush()?;
    w.get_ref().sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

/// An exclusive advisory lock on a file beside the parameters (flock through std).
struct GenerationLock(fs::File);

impl GenerationLock {
    fn acquire(path: &Path) -> Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("open lock {}", path.display()))?;
        file.lock()
            .with_context(|| format!("lock {}", path.display()))?;
        Ok(GenerationLock(file))
    }
}

impl Drop for GenerationLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_the_time_so_far_and_what_is_left() {
        let s = Duration::from_secs;
        assert_eq!(progress(s(192), Some(s(720))), "3m 12s, about 8m 48s left");
        assert_eq!(
            progress(s(780), Some(s(720))),
            "13m 0s, longer than the usual 12m 0s"
        );
        assert_eq!(
            progress(s(5), None),
            "5s so far (no estimate for this size)"
        );
    }
}
