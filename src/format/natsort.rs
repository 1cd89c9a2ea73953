//! The natural order `ls` sorts names in (skarademir/naturalsort, on lower-cased names):
//! runs of digits compare as numbers and come before letters, so `web2 < web10`.

use std::cmp::Ordering;

fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    for i in 1..=bytes.len() {
        if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
            out.push(&s[start..i]);
            start = i;
        }
    }
    out
}

fn is_number(chunk: &str) -> bool {
    chunk.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// Compares two names in natural order (case-sensitive; callers lower-case them first).
pub fn compare(a: &str, b: &str) -> Ordering {
    let a_stripped = a.replace(' ', "");
    let b_stripped = b.replace(' ', "");
    for (x, y) in chunks(&a_stripped).into_iter().zip(chunks(&b_stripped)) {
        if x == y {
            continue;
        }
        return match (is_number(x), is_number(y)) {
            (true, true) => {
                let (xt, yt) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                xt.len()
                    .cmp(&yt.len())
                    .then_with(|| xt.cmp(yt))
                    .then_with(|| x.len().cmp(&y.len()))
            }
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.cmp(y),
        };
    }
    a.len().cmp(&b.len())
}

/// Sorts names as `ls` does: natural order of the lower-cased names (stable, so names that differ
/// only in case keep their store order instead of collapsing as in docker-machine).
pub fn sort_names<T>(items: &mut [T], name: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| compare(&name(a).to_lowercase(), &name(b).to_lowercase()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec![
            "bar100",
            "Bar10",
            "testmachine2",
            "testmachine",
            "a1b2",
            "a1b10",
            "9z",
            "z9",
            "x01",
            "x1",
        ];
        sort_names(&mut names, |s| s);
        assert_eq!(
            names,
            [
                "9z",
                "a1b2",
                "a1b10",
                "Bar10",
                "bar100",
                "testmachine",
                "testmachine2",
                "x1",
                "x01",
                "z9"
            ]
        );
    }

    #[test]
    fn numbers_before_letters() {
        assert_eq!(compare("a1", "ab"), Ordering::Less);
        assert_eq!(compare("ab", "a1"), Ordering::Greater);
        assert_eq!(compare("same", "same"), Ordering::Equal);
    }
}
