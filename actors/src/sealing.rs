//! Sector threads: a plan is a table of states ([`table`], [`sealer`]) run by [`sector_plan`]
//! under the thread runner. Pure (no I/O, tested table by table): [`state`], [`table`],
//! [`sector`], [`failure`]. I/O: the step functions in [`sealer`], [`calls`] (manager,
//! processors, persisting), [`store`] (the files of a location) and [`quota`] (disk usage).

pub mod calls;
pub mod env;
pub mod failure;
pub mod quota;
pub mod sealer;
pub mod sector;
pub mod sector_plan;
pub mod state;
pub mod store;
pub mod table;
