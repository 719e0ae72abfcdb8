//! The register layout of a load device: which tags sit where, in which type. The load server,
//! the mes-edge cell config and both peers are all generated from the same layout, so that every
//! tool reads the same registers as the same values.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    U16,
    U32,
    F32,
}

impl Kind {
    pub fn span(self) -> u16 {
        match self {
            Kind::U16 => 1,
            Kind::U32 | Kind::F32 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::U16 => "u16",
            Kind::U32 => "u32",
            Kind::F32 => "f32",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub addr: u16,
    pub kind: Kind,
}

/// A run of registers read in one request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Block {
    pub addr: u16,
    pub count: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    pub tags: Vec<Tag>,
}

impl Layout {
    /// `"u16x200,u32x150,f32x150"`: the tags packed from address 0 in that order, named `t0`...
    pub fn parse(spec: &str) -> anyhow::Result<Layout> {
        let mut tags = Vec::new();
        let mut addr = 0u16;
        for part in spec.split(',') {
            let (kind, n) = part
                .split_once('x')
                .ok_or_else(|| anyhow::anyhow!("expected KINDxCOUNT, found {part:?}"))?;
            let kind = match kind {
                "u16" => Kind::U16,
                "u32" => Kind::U32,
                "f32" => Kind::F32,
                k => anyhow::bail!("unknown kind {k:?}"),
            };
            for _ in 0..n.parse::<usize>()? {
                tags.push(Tag {
                    name: format!("t{}", tags.len()),
                    addr,
                    kind,
                });
                addr += kind.span();
            }
        }
        Ok(Layout { tags })
    }

    pub fn registers(&self) -> u16 {
        self.tags.last().map_or(0, |t| t.addr + t.kind.span())
    }

    /// The requests that read every tag: contiguous runs of at most 125 registers (the
    /// protocol's limit), never splitting a tag. Every tool is given the same blocks.
    pub fn blocks(&self) -> Vec<Block> {
        let mut blocks: Vec<Block> = Vec::new();
        for t in &self.tags {
            match blocks.last_mut() {
                Some(b) if b.addr + b.count == t.addr && b.count + t.kind.span() <= 125 => {
                    b.count += t.kind.span()
                }
                _ => blocks.push(Block {
                    addr: t.addr,
                    count: t.kind.span(),
                }),
            }
        }
        blocks
    }
}

/// The registers holding `value` for a tag of `kind`, high word first (byte order ABCD).
pub fn encode(kind: Kind, value: f64) -> [u16; 2] {
    match kind {
        Kind::U16 => [value as u16, 0],
        Kind::U32 => {
            let v = value as u32;
            [(v >> 16) as u16, v as u16]
        }
        Kind::F32 => {
            let v = (value as f32).to_bits();
            [(v >> 16) as u16, v as u16]
        }
    }
}

/// A tag's starting value: distinct per tag, exact in every type.
pub fn initial(kind: Kind, index: usize) -> f64 {
    match kind {
        Kind::U16 => (index % 60000) as f64,
        Kind::U32 => 100_000.0 + index as f64,
        Kind::F32 => index as f64 * 0.5,
    }
}

/// What one change adds to a tag's value.
pub fn step(kind: Kind) -> f64 {
    match kind {
        Kind::U16 | Kind::U32 => 1.0,
        Kind::F32 => 0.25,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_never_split_a_tag_and_stay_within_125() {
        let l = Layout::parse("u16x200,u32x150,f32x150").unwrap();
        assert_eq!(l.tags.len(), 500);
        assert_eq!(l.registers(), 800);
        let blocks = l.blocks();
        assert!(blocks.iter().all(|b| b.count <= 125));
        assert_eq!(blocks.iter().map(|b| b.count as u32).sum::<u32>(), 800);
        for t in &l.tags {
            let b = blocks
                .iter()
                .find(|b| b.addr <= t.addr && t.addr < b.addr + b.count)
                .unwrap();
            assert!(t.addr + t.kind.span() <= b.addr + b.count, "{t:?} split");
        }
    }
}
