//! Prefix arithmetic for subnet pools: a pool's space as aligned CIDR blocks, the way Neutron's
//! `SubnetAllocator` sees it (`netaddr.IPSet(...).iter_cidrs()`: the fewest blocks covering the
//! set), and the two moves its allocations make: cutting a block out of a larger one, and
//! giving it back (merging with its buddy while the buddy is free too).
//!
//! A set of disjoint aligned blocks is that fewest-blocks form exactly when no two of its blocks
//! are buddies (the two halves of one block), so a store that keeps a pool's free space as
//! blocks keeps it canonical by cutting with [`split`] and giving back with [`buddy`] merges.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

use crate::{Range, from_u128, to_u128};

/// An aligned block of addresses: `first` has no bits below `len` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    pub first: u128,
    pub len: u8,
}

/// Address bits of an IP version.
pub const fn bits(version: u8) -> u8 {
    if version == 4 { 32 } else { 128 }
}

/// The host part's mask of a prefix of `len` bits in a `bits`-bit address.
fn host_mask(bits: u8, len: u8) -> u128 {
    let host = u32::from(bits.saturating_sub(len));
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

impl Block {
    pub fn of(net: &IpNet) -> Block {
        Block {
            first: to_u128(net.network()),
            len: net.prefix_len(),
        }
    }

    /// The last address of the block.
    pub fn last(self, version: u8) -> u128 {
        self.first | host_mask(bits(version), self.len)
    }

    pub fn range(self, version: u8) -> Range {
        Range {
            first: self.first,
            last: self.last(version),
        }
    }

    pub fn net(self, version: u8) -> IpNet {
        IpNet::new(from_u128(self.first, version), self.len)
            .unwrap_or_else(|_| unreachable!("a block's length fits its version"))
    }

    /// Whether `other` lies inside this block.
    pub fn contains(self, other: Block, version: u8) -> bool {
        self.len <= other.len
            && other.first >= self.first
            && other.last(version) <= self.last(version)
    }

    /// The other half of the block this one is half of (None for the whole address space).
    pub fn buddy(self, version: u8) -> Option<Block> {
        if self.len == 0 {
            return None;
        }
        let bit = host_mask(bits(version), self.len) + 1;
        Some(Block {
            first: self.first ^ bit,
            len: self.len,
        })
    }

    /// The block this one is half of.
    pub fn parent(self, version: u8) -> Block {
        let len = self.len.saturating_sub(1);
        Block {
            first: self.first & !host_mask(bits(version), len),
            len,
        }
    }
}

/// The fewest aligned blocks covering these ranges (which may overlap or touch), in address
/// order.
pub fn blocks_of(ranges: &[Range], version: u8) -> Vec<Block> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut merged: Vec<Range> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(m) if r.first <= m.last.saturating_add(1) => m.last = m.last.max(r.last),
            _ => merged.push(r),
        }
    }
    // Each range's fewest blocks are what ipnet's subnet iterators give (largest first).
    let mut out = Vec::new();
    for r in merged {
        match (from_u128(r.first, version), from_u128(r.last, version)) {
            (IpAddr::V4(first), IpAddr::V4(last)) => {
                out.extend(Ipv4Subnets::new(first, last, 0).map(|n| Block::of(&IpNet::V4(n))))
            }
            (IpAddr::V6(first), IpAddr::V6(last)) => {
                out.extend(Ipv6Subnets::new(first, last, 0).map(|n| Block::of(&IpNet::V6(n))))
            }
            _ => unreachable!("both ends are of one version"),
        }
    }
    out
}

/// The fewest aligned blocks covering `a` without `b`.
pub fn difference(a: &[Block], b: &[Block], version: u8) -> Vec<Block> {
    let mut left: Vec<Range> = a.iter().map(|x| x.range(version)).collect();
    left.sort_unstable();
    let mut holes: Vec<Range> = b.iter().map(|x| x.range(version)).collect();
    holes.sort_unstable();
    let mut out = Vec::new();
    for r in blocks_of(&left, version).iter().map(|x| x.range(version)) {
        let mut next = r.first;
        let mut covered = false;
        for h in holes
            .iter()
            .filter(|h| h.last >= r.first && h.first <= r.last)
        {
            if h.first > next {
                out.push(Range {
                    first: next,
                    last: h.first - 1,
                });
            }
            if h.last >= r.last {
                covered = true;
                break;
            }
            next = next.max(h.last + 1);
        }
        if !covered {
            out.push(Range {
                first: next,
                last: r.last,
            });
        }
    }
    blocks_of(&out, version)
}

/// What is left of free `block` when `taken` (inside it) is cut out: one block of each length
/// between theirs, the halves `taken` is not in, largest first.
pub fn split(block: Block, taken: Block, version: u8) -> Vec<Block> {
    debug_assert!(block.contains(taken, version));
    ((block.len + 1)..=taken.len)
        .map(|len| {
            let mask = !host_mask(bits(version), len);
            Block {
                first: taken.first & mask,
                len,
            }
            .buddy(version)
            .unwrap_or_else(|| unreachable!("a block under another has a buddy"))
        })
        .collect()
}

/// The lowest block of `len` inside `block` (which is at most that long).
pub fn lowest(block: Block, len: u8) -> Block {
    Block {
        first: block.first,
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(text: &str) -> Block {
        Block::of(&text.parse().unwrap())
    }

    fn shown(blocks: &[Block], version: u8) -> Vec<String> {
        blocks.iter().map(|x| x.net(version).to_string()).collect()
    }

    #[test]
    fn touching_and_overlapping_prefixes_are_compacted() {
        let ranges: Vec<Range> = ["10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24", "10.0.0.0/26"]
            .iter()
            .map(|t| b(t).range(4))
            .collect();
        assert_eq!(shown(&blocks_of(&ranges, 4), 4), ["10.0.0.0/23"]);
        // Touching but not aligned: two blocks stay.
        let ranges = [b("10.0.1.0/24").range(4), b("10.0.2.0/24").range(4)];
        assert_eq!(
            shown(&blocks_of(&ranges, 4), 4),
            ["10.0.1.0/24", "10.0.2.0/24"]
        );
        // A range on no boundary: the largest aligned blocks, in address order.
        let odd = Range {
            first: b("10.0.0.1/32").first,
            last: b("10.0.0.6/32").first,
        };
        assert_eq!(
            shown(&blocks_of(&[odd], 4), 4),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        let everything = Range {
            first: 0,
            last: u128::MAX,
        };
        assert_eq!(shown(&blocks_of(&[everything], 6), 6), ["::/0"]);
    }

    #[test]
    fn the_difference_is_the_fewest_blocks() {
        let free = difference(&[b("10.0.0.0/24")], &[b("10.0.0.64/26")], 4);
        assert_eq!(
            shown(&free, 4),
            ["10.0.0.0/26", "10.0.0.128/25"],
            "the /26 before and the /25 after"
        );
        let free = difference(&[b("10.0.0.0/24")], &[b("10.0.0.0/24")], 4);
        assert!(free.is_empty());
        let free = difference(&[b("2001:db8::/32")], &[b("2001:db8::/64")], 6);
        assert_eq!(free.len(), 32);
    }

    #[test]
    fn a_split_leaves_one_buddy_per_level() {
        let left = split(b("10.0.0.0/24"), b("10.0.0.64/26"), 4);
        assert_eq!(shown(&left, 4), ["10.0.0.128/25", "10.0.0.0/26"]);
        assert!(split(b("10.0.0.0/24"), b("10.0.0.0/24"), 4).is_empty());
        let left = split(b("::/1"), b("::/128"), 6);
        assert_eq!(left.len(), 127);
    }

    #[test]
    fn buddies_and_parents() {
        assert_eq!(b("10.0.0.64/26").buddy(4), Some(b("10.0.0.0/26")));
        assert_eq!(b("10.0.0.64/26").parent(4), b("10.0.0.0/25"));
        assert_eq!(b("8000::/1").buddy(6), Some(b("::/1")));
        assert_eq!(
            Block { first: 0, len: 0 }.last(6),
            u128::MAX,
            "the whole space"
        );
        assert!(b("10.0.0.0/8").contains(b("10.1.0.0/16"), 4));
        assert!(!b("10.1.0.0/16").contains(b("10.0.0.0/8"), 4));
    }
}
