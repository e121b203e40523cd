//! Docker-style random names (`adjective_surname`, moby `pkg/namesgenerator`) and ids.

const LEFT: [&str; 48] = [
    "admiring",
    "adoring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "beautiful",
    "blissful",
    "bold",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "dazzling",
    "determined",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "exciting",
    "fervent",
    "festive",
    "focused",
    "friendly",
    "funny",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "modest",
    "nice",
    "quirky",
    "vigilant",
];

const RIGHT: [&str; 48] = [
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "bhabha",
    "blackwell",
    "bohr",
    "booth",
    "brahmagupta",
    "cannon",
    "carson",
    "cerf",
    "chandrasekhar",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "euler",
    "fermat",
    "feynman",
    "galileo",
    "gauss",
    "goodall",
    "hamilton",
    "hawking",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "mayer",
    "mcclintock",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
];

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // getrandom only fails without a kernel entropy source; fall back to the clock
    if getrandom::fill(&mut b).is_err() {
        return jiff::Timestamp::now().as_nanosecond() as u64;
    }
    u64::from_le_bytes(b)
}

/// A random `adjective_surname`; with `retry > 0` a digit is appended, as moby does.
pub fn random_name(retry: u32) -> String {
    let r = random_u64();
    let l = LEFT[(r % LEFT.len() as u64) as usize];
    let s = RIGHT[((r >> 16) % RIGHT.len() as u64) as usize];
    // "boring_wozniak" is not a name Docker hands out (a Docker quirk we copy)
    if l == "boring" && s == "wozniak" {
        return random_name(retry);
    }
    if retry > 0 {
        format!("{l}_{s}{}", (r >> 32) % 10)
    } else {
        format!("{l}_{s}")
    }
}

/// A 64-hex container id that does not look like a number (moby's rule: all-digit
/// short ids would be taken for numbers).
pub fn random_id() -> String {
    loop {
        let mut raw = [0u8; 32];
        if getrandom::fill(&mut raw).is_err() {
            let t = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
            raw[..16].copy_from_slice(&t);
        }
        let id = hex::encode(raw);
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_look_like_dockers() {
        for i in 0..50 {
            let n = random_name(i % 2);
            let (l, r) = n.split_once('_').unwrap();
            assert!(LEFT.contains(&l), "{n}");
            let r = r.trim_end_matches(|c: char| c.is_ascii_digit());
            assert!(RIGHT.contains(&r), "{n}");
            assert!(berth_types::spec::valid_name(&n));
        }
        let id = random_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(random_id(), id);
    }
}
