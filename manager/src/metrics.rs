//! The Prometheus text format that `/metrics` answers in: the label escaping and the registry
//! of this process's own metrics live in `damocles_actors::metrics`, shared with the worker.

pub use damocles_actors::metrics::label;
