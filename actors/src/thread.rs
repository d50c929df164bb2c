//! A worker's threads: one actor, [`runner::ThreadRunner`], runs every kind of thread and owns
//! what they share (pause and resume, the timer between steps, side ticks such as heartbeats,
//! what the thread is doing, restarts). A [`plan::Plan`] per kind of thread only says what the
//! next step is and what its result means.

pub mod activity;
pub mod control;
pub mod plan;
pub mod runner;
