//! Enums whose values have fixed names (sector states, processor stages, plans, the manager's
//! job states): printed and parsed by those names, and a name that is not one is refused with
//! the list of valid ones.

/// Implements `Display` and `FromStr` for `$ty` from its `ALL` list and its `name()`; `$what`
/// names the kind in the error (`unknown stage "pc9"; valid stages: add_pieces, ...`).
#[macro_export]
macro_rules! by_name {
    ($ty:ty, $what:literal) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| {
                        let valid: Vec<&str> = <$ty>::ALL.iter().map(|v| v.name()).collect();
                        format!(
                            concat!("unknown ", $what, " {:?}; valid ", $what, "s: {}"),
                            s,
                            valid.join(", ")
                        )
                    })
            }
        }
    };
}
