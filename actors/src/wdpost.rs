//! WindowPoSt slots: the slot's states ([`state`], pure), the I/O of each step ([`steps`]), and
//! the plan the thread runner runs ([`slot`]).

pub mod slot;
pub mod state;
pub mod steps;
