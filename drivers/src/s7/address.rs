//! Where a value lives in an S7 CPU, in the notation engineers write in STEP 7 / TIA Portal and
//! in Kepware or Ignition: `DB10.DBW4`, `DB10.DBX2.3`, `MW20`, `M0.1`, `I0.1`, `QB3`, `IW64`.

use std::fmt;

/// A memory area of the CPU reachable by PUT/GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    /// Process image of the inputs (`I`, German `E`).
    Inputs,
    /// Process image of the outputs (`Q`, German `A`).
    Outputs,
    /// Bit memory, "merker" (`M`).
    Merker,
    /// A data block by its number.
    Db(u16),
}

impl Area {
    /// The area code of an S7 ANY pointer.
    pub fn code(self) -> u8 {
        match self {
            Area::Inputs => 0x81,
            Area::Outputs => 0x82,
            Area::Merker => 0x83,
            Area::Db(_) => 0x84,
        }
    }

    pub fn db_number(self) -> u16 {
        match self {
            Area::Db(n) => n,
            _ => 0,
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Area::Inputs => f.write_str("I"),
            Area::Outputs => f.write_str("Q"),
            Area::Merker => f.write_str("M"),
            Area::Db(n) => write!(f, "DB{n}"),
        }
    }
}

/// How much the address names: one bit, or a byte, word or double word starting at `byte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    Bit(u8),
    Byte,
    Word,
    DWord,
}

impl Width {
    fn letter(self) -> &'static str {
        match self {
            Width::Bit(_) => "X",
            Width::Byte => "B",
            Width::Word => "W",
            Width::DWord => "D",
        }
    }
}

/// A parsed absolute address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    pub area: Area,
    pub byte: u32,
    pub width: Width,
}

/// Byte offsets of an ANY pointer are 16 bits wide (the bit address is 19 bits).
pub const MAX_BYTE: u32 = 65_535;

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bit = match self.width {
            Width::Bit(b) => format!(".{b}"),
            _ => String::new(),
        };
        match self.area {
            Area::Db(_) => write!(
                f,
                "{}.DB{}{}{bit}",
                self.area,
                self.width.letter(),
                self.byte
            ),
            _ => {
                let letter = match self.width {
                    Width::Bit(_) => "",
                    w => w.letter(),
                };
                write!(f, "{}{letter}{}{bit}", self.area, self.byte)
            }
        }
    }
}

const EXPECTED: &str = "expected an S7 address like DB10.DBW4, DB10.DBX2.3, DB1.DBB0, DB1.DBD8, \
                        MW20, MD4, MB1, M0.1, I0.1, IW2, Q0.0 or QB3";

impl std::str::FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        let s = text.trim().to_ascii_uppercase();
        let fail = |why: &str| Err(format!("{text:?}: {why}; {EXPECTED}"));
        if s.is_empty() {
            return fail("empty");
        }
        let (area, rest) = if let Some(rest) = s.strip_prefix("DB") {
            let Some((num, rest)) = rest.split_once('.') else {
                return fail("a data block address needs a dot after the block number");
            };
            let Ok(n) = num.parse::<u16>() else {
                return fail(&format!("{num:?} is not a data block number (1 to 65535)"));
            };
            if n == 0 {
                return fail("data block numbers start at 1");
            }
            let Some(rest) = rest.strip_prefix("DB") else {
                return fail("after DB<n>. comes DBX, DBB, DBW or DBD");
            };
            (Area::Db(n), rest.to_string())
        } else {
            let mut chars = s.chars();
            let area = match chars.next() {
                Some('M') => Area::Merker,
                Some('I') | Some('E') => Area::Inputs,
                Some('Q') | Some('A') => Area::Outputs,
                _ => return fail("unknown area (DB, M, I or Q)"),
            };
            (area, chars.as_str().to_string())
        };
        let (width_letter, digits) = match rest.chars().next() {
            Some(c @ ('X' | 'B' | 'W' | 'D')) => (Some(c), &rest[1..]),
            Some(c) if c.is_ascii_digit() => (None, rest.as_str()),
            _ => return fail("missing width letter (X, B, W or D) or byte number"),
        };
        if width_letter.is_none() && matches!(area, Area::Db(_)) {
            return fail("after DB<n>. comes DBX, DBB, DBW or DBD");
        }
        let (byte_text, bit_text) = match digits.split_once('.') {
            Some((b, bit)) => (b, Some(bit)),
            None => (digits, None),
        };
        let Ok(byte) = byte_text.parse::<u32>() else {
            return fail(&format!("{byte_text:?} is not a byte number"));
        };
        if byte > MAX_BYTE {
            return fail(&format!(
                "byte {byte} is past the last addressable byte {MAX_BYTE}"
            ));
        }
        let bit = match bit_text {
            None => None,
            Some(b) => match b.parse::<u8>() {
                Ok(b) if b <= 7 => Some(b),
                _ => return fail(&format!("bit {b:?} is not 0 to 7")),
            },
        };
        let width = match (width_letter, bit) {
            (Some('X') | None, Some(b)) => Width::Bit(b),
            (Some('X') | None, None) => return fail("a bit address needs .<bit>, like M0.1"),
            (Some(_), Some(_)) => return fail("only bit addresses (X) take a .<bit>"),
            (Some('B'), None) => Width::Byte,
            (Some('W'), None) => Width::Word,
            (Some(_), None) => Width::DWord,
        };
        Ok(Address { area, byte, width })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Address {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_notations_engineers_write_parse() {
        let cases = [
            ("DB10.DBW4", Area::Db(10), 4, Width::Word),
            ("DB10.DBX2.3", Area::Db(10), 2, Width::Bit(3)),
            ("db10.dbd8", Area::Db(10), 8, Width::DWord),
            ("DB1.DBB1", Area::Db(1), 1, Width::Byte),
            ("MW20", Area::Merker, 20, Width::Word),
            ("MD4", Area::Merker, 4, Width::DWord),
            ("MB1", Area::Merker, 1, Width::Byte),
            ("M0.1", Area::Merker, 0, Width::Bit(1)),
            ("I0.1", Area::Inputs, 0, Width::Bit(1)),
            ("E0.1", Area::Inputs, 0, Width::Bit(1)),
            ("Q0.0", Area::Outputs, 0, Width::Bit(0)),
            ("A4.7", Area::Outputs, 4, Width::Bit(7)),
            ("IW2", Area::Inputs, 2, Width::Word),
            ("QB3", Area::Outputs, 3, Width::Byte),
            ("MX3.2", Area::Merker, 3, Width::Bit(2)),
        ];
        for (text, area, byte, width) in cases {
            assert_eq!(p(text), Address { area, byte, width }, "{text}");
        }
    }

    #[test]
    fn display_gives_back_the_canonical_notation() {
        for s in [
            "DB10.DBW4",
            "DB10.DBX2.3",
            "MW20",
            "M0.1",
            "I0.1",
            "QB3",
            "ID4",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        for (bad, says) in [
            ("DB10.W4", "DBX, DBB, DBW or DBD"),
            ("DB0.DBW4", "start at 1"),
            ("DB10DBW4", "dot after the block number"),
            ("M0.8", "not 0 to 7"),
            ("MW4.1", "only bit addresses"),
            ("M4", "needs .<bit>"),
            ("T4", "unknown area"),
            ("MW70000", "past the last addressable byte"),
            ("", "empty"),
        ] {
            let e = bad.parse::<Address>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("expected an S7 address like"), "{e}");
        }
    }
}
