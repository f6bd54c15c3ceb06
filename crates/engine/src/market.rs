//! The price index (rules 25): the prices at which accepted work was recently paid, per resource
//! class, kept by the engine so every validator shows the same market.
//!
//! Each payment for an accepted result (`State::pay`) records the price per fuel it was paid at
//! and the fuel, under its class — `cpu` or `gpu` (a GPU job's map tasks, paid at the GPU price)
//! — and under the class at the provider's region (`cpu@eu-west`). The newest
//! [`MARKET_WINDOW`] payments of each are kept. A requester's job may ask for `max_price =
//! "market + 10%"`: the client reads the median of the class (at the job's required region, if
//! it names one) and submits the resolved number, so the engine's rules for a job's price are
//! unchanged.

use crate::state::State;
use crate::types::{Amount, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many recent payments each class keeps.
pub const MARKET_WINDOW: usize = 64;
/// The most regions the index keeps a class for (each provider names its own region: the index
/// must not grow with whatever names providers invent).
pub const MARKET_REGIONS: usize = 64;

/// One payment's price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Clearing {
    /// Base units per unit of fuel.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub price: Amount,
    pub fuel: u64,
    pub at: Time,
}

/// The recent payments of every class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Market {
    /// By class: `cpu`, `gpu`, `cpu@REGION`, `gpu@REGION`; oldest first.
    pub classes: BTreeMap<String, Vec<Clearing>>,
}

/// What a class's recent payments say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PriceIndex {
    pub class: String,
    /// Payments counted (at most [`MARKET_WINDOW`]).
    pub payments: u32,
    /// The median price per fuel (the lower middle of an even count).
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub median: Amount,
    /// Fuel-weighted mean price, rounded down.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub mean: Amount,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub low: Amount,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub high: Amount,
    /// The oldest payment counted.
    pub since: Time,
}

impl Market {
    /// Records a payment at `price` for `fuel` in `kind` (`cpu` or `gpu`) at `region`.
    pub(crate) fn record(&mut self, kind: &str, region: &str, clearing: Clearing) {
        let regional = format!("{kind}@{region}");
        let regions = self.classes.keys().filter(|k| k.contains('@')).count();
        let mut keys = vec![kind.to_string()];
        if self.classes.contains_key(&regional) || regions < MARKET_REGIONS {
            keys.push(regional);
        }
        for key in keys {
            let ring = self.classes.entry(key).or_default();
            ring.push(clearing.clone());
            if ring.len() > MARKET_WINDOW {
                ring.drain(..ring.len().saturating_sub(MARKET_WINDOW));
            }
        }
    }

    /// The index of `class`, if it has payments.
    pub fn index(&self, class: &str) -> Option<PriceIndex> {
        let ring = self.classes.get(class)?;
        let mut prices: Vec<Amount> = ring.iter().map(|c| c.price).collect();
        prices.sort_unstable();
        let middle = prices.len().checked_sub(1)?.checked_div(2)?;
        let (weighted, fuel) = ring.iter().fold((0u128, 0u128), |(w, f), c| {
            (
                w.saturating_add(c.price.saturating_mul(Amount::from(c.fuel))),
                f.saturating_add(Amount::from(c.fuel)),
            )
        });
        Some(PriceIndex {
            class: class.to_string(),
            payments: u32::try_from(ring.len()).unwrap_or(u32::MAX),
            median: *prices.get(middle)?,
            mean: weighted.checked_div(fuel).unwrap_or(0),
            low: *prices.first()?,
            high: *prices.last()?,
            since: ring.first()?.at,
        })
    }
}

impl State {
    /// Every class's price index.
    pub fn price_indexes(&self) -> Vec<PriceIndex> {
        self.market
            .classes
            .keys()
            .filter_map(|class| self.market.index(class))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_keeps_the_newest_payments_per_class_and_region() {
        let mut m = Market::default();
        for (i, price) in [5u128, 1, 3, 9].into_iter().enumerate() {
            let at = i as u64;
            m.record(
                "cpu",
                "eu",
                Clearing {
                    price,
                    fuel: 10,
                    at,
                },
            );
        }
        m.record(
            "cpu",
            "us",
            Clearing {
                price: 7,
                fuel: 30,
                at: 9,
            },
        );
        let cpu = m.index("cpu").unwrap();
        // 1 3 5 7 9: median 5; mean (50+10+30+90+210)/70 = 5.57 → 5.
        assert_eq!((cpu.median, cpu.mean, cpu.low, cpu.high), (5, 5, 1, 9));
        assert_eq!((cpu.payments, cpu.since), (5, 0));
        // 1 3 5 9: the lower middle.
        assert_eq!(m.index("cpu@eu").unwrap().median, 3);
        assert_eq!(m.index("cpu@us").unwrap().median, 7);
        assert_eq!(m.index("gpu"), None);
        for i in 0..100 {
            m.record(
                "gpu",
                "eu",
                Clearing {
                    price: i,
                    fuel: 1,
                    at: 100 + i as u64,
                },
            );
        }
        let gpu = m.index("gpu").unwrap();
        assert_eq!((gpu.payments, gpu.low, gpu.since), (64, 36, 136));
        // Regions a provider invents stop adding classes at the cap.
        for r in 0..200 {
            m.record(
                "cpu",
                &format!("r{r}"),
                Clearing {
                    price: 1,
                    fuel: 1,
                    at: 0,
                },
            );
        }
        let regions = m.classes.keys().filter(|k| k.contains('@')).count();
        assert_eq!(regions, MARKET_REGIONS);
    }
}
