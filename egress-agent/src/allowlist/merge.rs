//! One pass over two sorted prefix maps, so comparing a million entries costs a walk, not a
//! tree lookup per entry.

use std::iter::Peekable;

use ipnet::IpNet;

/// Every prefix of either side, in order, with its value on each side (`None`: absent).
pub fn join<'a, H, W>(have: H, want: W) -> impl Iterator<Item = (IpNet, Option<u32>, Option<u32>)>
where
    H: Iterator<Item = (&'a IpNet, &'a u32)>,
    W: Iterator<Item = (&'a IpNet, &'a u32)>,
{
    let mut have: Peekable<H> = have.peekable();
    let mut want: Peekable<W> = want.peekable();
    std::iter::from_fn(move || {
        let item = match (have.peek(), want.peek()) {
            (None, None) => return None,
            (Some((h, hv)), Some((w, wv))) if h == w => (**h, Some(**hv), Some(**wv)),
            (Some((h, hv)), Some((w, _))) if h < w => (**h, Some(**hv), None),
            (Some((h, hv)), None) => (**h, Some(**hv), None),
            (_, Some((w, wv))) => (**w, None, Some(**wv)),
        };
        if item.1.is_some() {
            have.next();
        }
        if item.2.is_some() {
            want.next();
        }
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::MapContents;

    #[test]
    fn every_prefix_once_with_both_sides() {
        let net = |text: &str| text.parse::<IpNet>().expect("prefix");
        let have: MapContents = [(net("192.0.2.0/24"), 1), (net("198.51.100.1/32"), 2)].into();
        let want: MapContents = [(net("192.0.2.0/24"), 3), (net("203.0.113.0/24"), 1)].into();
        let joined: Vec<_> = join(have.iter(), want.iter()).collect();
        assert_eq!(
            joined,
            [
                (net("192.0.2.0/24"), Some(1), Some(3)),
                (net("198.51.100.1/32"), Some(2), None),
                (net("203.0.113.0/24"), None, Some(1)),
            ]
        );
        assert_eq!(join(want.iter(), MapContents::new().iter()).count(), 2);
    }
}
