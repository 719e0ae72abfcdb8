//! gzip for the status page, done once at start: DEFLATE with the fixed Huffman codes and LZ77
//! matches over the whole page (RFC 1951, RFC 1952). The build has no compression crate to
//! lean on, and the page's three assets are text that repeats itself (markup, CSS selectors,
//! script names), which fixed codes already shrink to about a third. The encoder is small
//! and checked by decoders that are not ours: Python's gzip module and the two browsers in
//! tests/ops/status_page.rs.

/// Bytes back that LZ77 may reach: DEFLATE's window.
const WINDOW: usize = 32 * 1024;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
/// Candidates looked at per position: enough for a page of text, bounded for a large input.
const CHAIN: usize = 64;
const HASH_BITS: u32 = 15;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// `data` as a gzip member (no name, no time: the same bytes at every start).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(deflate(data));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// One final DEFLATE block with the fixed codes.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE 01: fixed Huffman codes
    let mut head = vec![usize::MAX; 1 << HASH_BITS];
    let mut prev = vec![usize::MAX; WINDOW];
    let mut at = 0;
    while at < data.len() {
        let (len, dist) = longest_match(data, at, &head, &prev);
        let step = if len >= MIN_MATCH {
            length(&mut bits, len);
            distance(&mut bits, dist);
            len
        } else {
            literal(&mut bits, data[at] as u16);
            1
        };
        for p in at..(at + step).min(data.len().saturating_sub(MIN_MATCH - 1)) {
            let h = hash(&data[p..p + MIN_MATCH]);
            prev[p % WINDOW] = head[h];
            head[h] = p;
        }
        at += step;
    }
    literal(&mut bits, 256); // end of block
    bits.finish()
}

fn hash(three: &[u8]) -> usize {
    let v = (three[0] as u32) << 16 | (three[1] as u32) << 8 | three[2] as u32;
    (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

/// The longest earlier match for the bytes at `at` within the window: (length, distance).
fn longest_match(data: &[u8], at: usize, head: &[usize], prev: &[usize]) -> (usize, usize) {
    if at + MIN_MATCH > data.len() {
        return (0, 0);
    }
    let max = MAX_MATCH.min(data.len() - at);
    let (mut best, mut dist) = (0, 0);
    let mut candidate = head[hash(&data[at..at + MIN_MATCH])];
    for _ in 0..CHAIN {
        if candidate == usize::MAX || at - candidate > WINDOW - 1 || candidate >= at {
            break;
        }
        let len = data[candidate..]
            .iter()
            .zip(&data[at..at + max])
            .take_while(|(a, b)| a == b)
            .count();
        if len > best {
            (best, dist) = (len, at - candidate);
            if len == max {
                break;
            }
        }
        let next = prev[candidate % WINDOW];
        if next == usize::MAX || next >= candidate {
            break;
        }
        candidate = next;
    }
    (best, dist)
}

/// A literal byte, or 256 (end of block) and the length symbols 257..=285, in the fixed code.
fn literal(bits: &mut Bits, symbol: u16) {
    let (code, len) = match symbol {
        0..=143 => (0x30 + symbol as u32, 8),
        144..=255 => (0x190 + (symbol as u32 - 144), 9),
        256..=279 => (symbol as u32 - 256, 7),
        _ => (0xc0 + (symbol as u32 - 280), 8),
    };
    bits.put(reverse(code, len), len);
}

fn length(bits: &mut Bits, len: usize) {
    let i = LEN_BASE
        .iter()
        .rposition(|&b| b as usize <= len)
        .expect("len >= 3");
    literal(bits, 257 + i as u16);
    bits.put((len - LEN_BASE[i] as usize) as u32, LEN_EXTRA[i] as u32);
}

fn distance(bits: &mut Bits, dist: usize) {
    let i = DIST_BASE
        .iter()
        .rposition(|&b| b as usize <= dist)
        .expect("dist >= 1");
    bits.put(reverse(i as u32, 5), 5);
    bits.put((dist - DIST_BASE[i] as usize) as u32, DIST_EXTRA[i] as u32);
}

/// Huffman codes go out from their most significant bit; everything else from the least.
fn reverse(code: u32, len: u32) -> u32 {
    code.reverse_bits() >> (32 - len)
}

#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= (value as u64) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from zlib (Python: `zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_FIXED)`) for
    /// inputs with one encoding only; longer ones are opened by Python's gzip module in
    /// tests/ops/status_page.rs (encoders may choose other matches, all valid).
    #[test]
    fn fixed_blocks_as_zlib_writes_them() {
        assert_eq!(deflate(b""), [0x03, 0x00]);
        assert_eq!(deflate(b"a"), [0x4b, 0x04, 0x00]);
        assert_eq!(deflate(b"ab"), [0x4b, 0x4c, 0x02, 0x00]);
    }

    #[test]
    fn the_check_value_of_crc32() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
