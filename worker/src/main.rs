mod params;
fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    params::ensure(params::Circuit::WindowPost(filecoin_proofs_api::RegisteredPoStProof::StackedDrgWindow2KiBV1_2))?;
    params::ensure(params::Circuit::Seal(filecoin_proofs_api::RegisteredSealProof::StackedDrg2KiBV1_1))?;
    Ok(())
}
