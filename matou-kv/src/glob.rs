//! Redis's glob patterns (`KEYS`, `SCAN MATCH`, `CONFIG GET`): the
//! semantics of Redis's `stringmatchlen`, byte for byte.
//!
//! - `*` any run of bytes (possibly empty), `?` any one byte;
//! - `[abc]` one of, `[^abc]` none of, `[a-z]` a range (a reversed range
//!   `[z-a]` is the same range), `\` inside a class escapes the next byte;
//!   a class missing its `]` ends at the end of the pattern;
//! - `\x` outside a class is a literal `x`; a trailing `\` is a literal `\`;
//! - every other byte matches itself (or its other case with `nocase`).
//!
//! Invariant: matching takes O(pattern × subject) time whatever the input.
//! Redis's recursive matcher needs a guard against exponential blow-up on
//! patterns like `a*a*a*a*b`; here every token but `*` consumes exactly one
//! byte, so remembering only the last `*` and retrying from there is both
//! exact and quadratic at worst, with no recursion.

/// Whether `subject` matches `pattern` (case-sensitive, as KEYS and SCAN).
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    glob(pattern, subject, false)
}

/// Whether `subject` matches `pattern` ignoring ASCII case (CONFIG GET).
pub fn matches_nocase(pattern: &[u8], subject: &[u8]) -> bool {
    glob(pattern, subject, true)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches the single-byte token at `pattern[p]` (not `*`) against `c`:
/// the index after the token if it matches, `None` if not.
fn token(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'[' => {
            let mut q = p + 1;
            let not = pattern.get(q) == Some(&b'^');
            if not {
                q += 1;
            }
            let mut hit = false;
            loop {
                match pattern.get(q) {
                    // Unterminated class: it ends with the pattern.
                    None => break,
                    Some(b']') => {
                        q += 1;
                        break;
                    }
                    Some(b'\\') if q + 1 < pattern.len() => {
                        hit |= eq(pattern[q + 1], c, nocase);
                        q += 2;
                    }
                    Some(&start) if q + 2 < pattern.len() && pattern[q + 1] == b'-' => {
                        let end = pattern[q + 2];
                        let (lo, hi) = if start <= end {
                            (start, end)
                        } else {
                            (end, start)
                        };
                        hit |= if nocase {
                            let lc = c.to_ascii_lowercase();
                            (lo.to_ascii_lowercase()..=hi.to_ascii_lowercase()).contains(&lc)
                        } else {
                            (lo..=hi).contains(&c)
                        };
                        q += 3;
                    }
                    Some(&lit) => {
                        hit |= eq(lit, c, nocase);
                        q += 1;
                    }
                }
            }
            (hit != not).then_some(q)
        }
        b'\\' if p + 1 < pattern.len() => eq(pattern[p + 1], c, nocase).then_some(p + 2),
        lit => eq(lit, c, nocase).then_some(p + 1),
    }
}

fn glob(pattern: &[u8], subject: &[u8], nocase: bool) -> bool {
    let (mut p, mut s) = (0, 0);
    // Where to resume after a mismatch: just after the last `*`, and the
    // subject position that star will swallow up to next.
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            star = Some((p, s));
            continue;
        }
        let next = if p < pattern.len() {
            token(pattern, p, subject[s], nocase)
        } else {
            None
        };
        match (next, star) {
            (Some(np), _) => {
                p = np;
                s += 1;
            }
            (None, Some((sp, ss))) => {
                // Let the star swallow one more byte and retry.
                p = sp;
                s = ss + 1;
                star = Some((sp, ss + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        matches(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn star_and_question_mark() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbY"));
        assert!(m("**a**", "xax"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(!m("?", ""));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("[z-a]", "m"), "a reversed range is the same range");
        assert!(m("[\\]]", "]"));
        assert!(m("[a\\-z]", "-"));
        assert!(!m("[a\\-z]", "b"));
        assert!(!m("[]", "a"), "an empty class matches nothing");
    }

    #[test]
    fn escapes_and_unterminated_classes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?", "a?"));
        assert!(m("a\\", "a\\"), "a trailing backslash is literal");
        assert!(m("[ab", "a"), "an unterminated class ends with the pattern");
        assert!(!m("[ab", "ab"));
        assert!(m("[a-", "-"), "`-` at the end of a class is literal");
        assert!(m("[a-", "a"));
        assert!(m("x[^", "xq"), "`[^` alone negates an empty class");
    }

    #[test]
    fn nocase_only_when_asked() {
        assert!(!matches(b"SAVE", b"save"));
        assert!(matches_nocase(b"SAVE", b"save"));
        assert!(matches_nocase(b"[A-C]ppend*", b"appendonly"));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let subject = vec![b'a'; 10_000];
        let mut pattern = b"a*".repeat(50);
        pattern.push(b'b');
        let t = std::time::Instant::now();
        assert!(!matches(&pattern, &subject));
        // Quadratic at worst: far below a second even in debug builds.
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
