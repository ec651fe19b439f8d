//! How many CPUs the kernel may run the XDP program on: a per-CPU map has
//! a slot for each possible CPU, and a per-CPU budget is split among them.

/// The possible CPUs (`/sys/devices/system/cpu/possible`, such as `0-3`
/// or `0,2-5`); 1 when that cannot be read.
pub fn possible() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| count(&s))
        .unwrap_or(1)
}

/// CPUs in a kernel CPU list.
fn count(list: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in list.trim().split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()?.checked_sub(a.parse().ok()?)? + 1,
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_counted() {
        assert_eq!(count("0\n"), Some(1));
        assert_eq!(count("0-3"), Some(4));
        assert_eq!(count("0,2-5,7"), Some(6));
        assert_eq!(count(""), None);
        assert_eq!(count("3-1"), None);
        assert!(possible() >= 1);
    }
}
