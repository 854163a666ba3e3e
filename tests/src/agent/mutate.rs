//! Deterministic input mutation for property-style tests: a seeded generator and byte-level
//! mutations (flips, cuts, insertions of tokens that matter to TOML and JSON), so a failing
//! case can be replayed from its seed and index.

/// splitmix64: small, seedable, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Tokens that tend to reach interesting parser states in TOML and JSON.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"'",
    b"'''",
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"{",
    b"}",
    b"=",
    b",",
    b":",
    b"\n",
    b"#",
    b"\\",
    b"\\u0000",
    b"-1",
    b"0",
    b"4294967296",
    b"99999999999999999999999",
    b"1e999",
    b"nan",
    b"inf",
    b"true",
    b"null",
    b"[[interface]]",
    b"[allow]",
    b"0.0.0.0/0",
    b"::/0",
    b"10.1.2.3/8",
    b"\xff\xfe",
    b"\x00",
    b"\xc3\x28",
    b"\"relay\"",
    b"\"request\"",
];

/// One to four random mutations of `input`.
pub fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.below(bytes.len() + 1)
        };
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => bytes.truncate(at),
            3 => {
                let i = rng.below(bytes.len().max(1));
                let copy = bytes[i.min(bytes.len())..].iter().take(32).copied();
                let copy: Vec<u8> = copy.collect();
                bytes.splice(at..at, copy);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())];
                bytes.splice(at..at, token.iter().copied());
            }
        }
    }
    bytes
}
