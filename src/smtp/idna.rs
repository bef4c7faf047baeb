//! Internationalised domain names on the wire without SMTPUTF8: a domain
//! with non-ASCII labels can travel as its A-labels (`xn--...`, RFC 5890),
//! each label Punycode-encoded (RFC 3492). Only the domain can be
//! converted: a non-ASCII local part needs SMTPUTF8 (RFC 6531).
//!
//! Labels are lower-cased before encoding; the full UTS #46 mapping is not
//! applied, so a label that needs more than case folding is sent as the
//! user wrote it, and the server decides.

const BASE: u32 = 36;
const TMIN: u32 = 1;
const TMAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 128;

fn adapt(mut delta: u32, numpoints: u32, first: bool) -> u32 {
    delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / numpoints;
    let mut k = 0;
    while delta > ((BASE - TMIN) * TMAX) / 2 {
        delta /= BASE - TMIN;
        k += BASE;
    }
    k + (((BASE - TMIN + 1) * delta) / (delta + SKEW))
}

fn digit(d: u32) -> char {
    // 0..25 → a..z, 26..35 → 0..9
    if d < 26 {
        (b'a' + d as u8) as char
    } else {
        (b'0' + (d - 26) as u8) as char
    }
}

/// Punycode (RFC 3492 §6.3) of one label; `None` on overflow.
pub fn punycode(input: &str) -> Option<String> {
    let chars: Vec<u32> = input.chars().map(|c| c as u32).collect();
    let mut out: String = input.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    let mut handled = basic;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias) = (INITIAL_N, 0u32, INITIAL_BIAS);
    while (handled as usize) < chars.len() {
        let m = *chars.iter().filter(|&&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in &chars {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

/// The ASCII form of a domain: non-ASCII labels as `xn--` A-labels.
pub fn domain_to_ascii(domain: &str) -> Option<String> {
    let labels: Option<Vec<String>> = domain
        .split('.')
        .map(|label| {
            if label.is_ascii() {
                Some(label.to_owned())
            } else {
                punycode(&label.to_lowercase()).map(|p| format!("xn--{p}"))
            }
        })
        .collect();
    let ascii = labels?.join(".");
    (ascii.len() <= 253 && ascii.split('.').all(|l| l.len() <= 63)).then_some(ascii)
}

/// An address whose local part is ASCII, with its domain as A-labels;
/// `None` when the local part is not ASCII (only SMTPUTF8 can carry it).
pub fn address_to_ascii(addr: &str) -> Option<String> {
    let (local, domain) = addr.rsplit_once('@')?;
    if !local.is_ascii() {
        return None;
    }
    Some(format!("{local}@{}", domain_to_ascii(domain)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3492 §7.1 sample strings (those without upper-case code points).
    #[test]
    fn rfc3492_vectors() {
        let cases: &[(&[u32], &str)] = &[
            // (A) Arabic (Egyptian)
            (
                &[
                    0x0644, 0x064A, 0x0647, 0x0645, 0x0627, 0x0628, 0x062A, 0x0643, 0x0644, 0x0645,
                    0x0648, 0x0634, 0x0639, 0x0631, 0x0628, 0x064A, 0x061F,
                ],
                "egbpdaj6bu4bxfgehfvwxn",
            ),
            // (B) Chinese (simplified)
            (
                &[
                    0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0, 0x4E48, 0x4E0D, 0x8BF4, 0x4E2D, 0x6587,
                ],
                "ihqwcrb4cv8a8dqg056pqjye",
            ),
            // (I) Russian (Cyrillic), lower case
            (
                &[
                    0x043F, 0x043E, 0x0447, 0x0435, 0x043C, 0x0443, 0x0436, 0x0435, 0x043E, 0x043D,
                    0x0438, 0x043D, 0x0435, 0x0433, 0x043E, 0x0432, 0x043E, 0x0440, 0x044F, 0x0442,
                    0x043F, 0x043E, 0x0440, 0x0443, 0x0441, 0x0441, 0x043A, 0x0438,
                ],
                "b1abfaaepdrnnbgefbadotcwatmq2g4l",
            ),
            // (L) 3<nen>B<gumi><kinpachi><sensei> without upper case: -> "3B" kept as is
            (
                &[
                    0x0033, 0x5E74, 0x0042, 0x7D44, 0x91D1, 0x516B, 0x5148, 0x751F,
                ],
                "3B-ww4c5e180e575a65lsy2b",
            ),
        ];
        for (cps, want) in cases {
            let s: String = cps.iter().map(|&c| char::from_u32(c).unwrap()).collect();
            assert_eq!(punycode(&s).as_deref(), Some(*want), "{s}");
        }
    }

    #[test]
    fn domains_and_addresses() {
        assert_eq!(
            domain_to_ascii("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            domain_to_ascii("MÜNCHEN.de").as_deref(),
            Some("xn--mnchen-3ya.de")
        );
        assert_eq!(
            domain_to_ascii("example.org").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            address_to_ascii("info@bücher.example").as_deref(),
            Some("info@xn--bcher-kva.example")
        );
        assert_eq!(address_to_ascii("jörg@example.org"), None);
        assert_eq!(domain_to_ascii(&format!("{}.de", "ü".repeat(80))), None);
    }
}
