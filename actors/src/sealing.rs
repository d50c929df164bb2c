//! Sector threads: a plan is a table of states ([`table`]; [`sealer`], [`snapup`],
//! [`rebuild`], [`unseal`]) run by [`sector_plan`] under the thread runner. Pure (no I/O, tested table by
//! table): [`state`], [`table`], [`sector`], [`failure`]. I/O: the step functions in
//! [`sealer`], [`snapup`], [`rebuild`], [`unseal`] and [`shared`], [`calls`] (manager, processors, persisting), [`store`] (the files of a
//! location) and [`quota`] (disk usage).

use crate::thread::plan::PlanKind;

pub mod calls;
pub mod env;
pub mod failure;
pub mod quota;
pub mod rebuild;
pub mod sealer;
pub mod sector;
pub mod sector_plan;
pub mod shared;
pub mod snapup;
pub mod state;
pub mod store;
pub mod table;
pub mod unseal;

/// The table of a sector plan; none for a plan that is not about sectors (`wdpost`).
pub fn table_of(plan: PlanKind) -> Option<&'static table::Table> {
    match plan {
        PlanKind::Sealer => Some(&sealer::SEALER),
        PlanKind::SnapUp => Some(&snapup::SNAPUP),
        PlanKind::Rebuild => Some(&rebuild::REBUILD),
        PlanKind::Unseal => Some(&unseal::UNSEAL),
        PlanKind::WdPost => None,
    }
}
