//! Byte sizes as operators write them in config and on the command line (`2KiB`, `32GiB`,
//! `2TiB`, `512`), parsed in one place.

/// Parses a size with an optional binary (`KiB`..`TiB`) or decimal (`KB`..`TB`) unit.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!("bad size {s:?}: expected a number with an optional unit like 2KiB, 32GiB, 2TiB")
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// The shortest binary form of a size (`2048` → `2KiB`).
pub fn format_size(bytes: u64) -> String {
    for (unit, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_format() {
        for (s, n) in [
            ("2KiB", 2048u64),
            ("8MiB", 8 << 20),
            ("32GiB", 32 << 30),
            ("2TiB", 2 << 40),
            ("512", 512),
            ("1KB", 1000),
        ] {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        assert_eq!(format_size(2048), "2KiB");
        assert_eq!(format_size(32 << 30), "32GiB");
        assert_eq!(format_size(1000), "1000B");
        for bad in ["", "KiB", "2XB", "-1", "99999999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
