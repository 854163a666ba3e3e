//! Destinations seen in the dataplane's ring-buffer events, per subscriber, for the
//! reports' `sample_destinations`. Bounded: at most 16 per subscriber and
//! `MAX_SUBSCRIBERS` subscribers (a flood of spoofed sources evicts, never grows).

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use egress_common::SubscriberKey;

use super::report::MAX_SAMPLE_DESTINATIONS;

const MAX_SUBSCRIBERS: usize = 16_384;

#[derive(Debug, Default)]
pub struct SampleBook {
    seen: Mutex<HashMap<SubscriberKey, Vec<IpAddr>>>,
}

impl SampleBook {
    pub fn record(&self, subscriber: &SubscriberKey, destination: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains_key(subscriber)
            && seen.len() >= MAX_SUBSCRIBERS
            && let Some(evict) = seen.keys().next().copied()
        {
            seen.remove(&evict);
        }
        let list = seen.entry(*subscriber).or_default();
        if list.len() < MAX_SAMPLE_DESTINATIONS && !list.contains(&destination) {
            list.push(destination);
        }
    }

    pub fn of(&self, subscriber: &SubscriberKey) -> Vec<String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(subscriber)
            .map(|list| list.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sixteen_distinct_destinations_per_subscriber_and_bounded_subscribers() {
        let book = SampleBook::default();
        let key = SubscriberKey::ipv4([192, 0, 2, 2]);
        for i in 0..40u8 {
            book.record(&key, IpAddr::from([198, 51, 100, i % 20]));
        }
        assert_eq!(book.of(&key).len(), 16);
        assert_eq!(book.of(&key)[0], "198.51.100.0");
        for i in 0..(MAX_SUBSCRIBERS as u32 + 100) {
            let key = SubscriberKey::ipv4(i.to_be_bytes());
            book.record(&key, IpAddr::from([198, 51, 100, 1]));
        }
        assert!(book.seen.lock().expect("lock").len() <= MAX_SUBSCRIBERS);
    }
}
