//! The order training samples are drawn in: per-epoch seeded shuffles of an image pool and a
//! text-only pool, mixed at a set ratio. Slot `g` of the run is a pure function of the seed, so a
//! resumed run draws exactly what the uninterrupted one would have.

use crate::data::Record;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

struct Pool {
    records: Vec<Record>,
    epoch: usize,
    order: Vec<usize>,
    seed: u64,
}

impl Pool {
    fn new(records: Vec<Record>, seed: u64) -> Self {
        let mut p = Pool {
            records,
            epoch: usize::MAX,
            order: Vec::new(),
            seed,
        };
        p.set_epoch(0);
        p
    }

    fn set_epoch(&mut self, e: usize) {
        if self.epoch == e {
            return;
        }
        self.epoch = e;
        self.order = (0..self.records.len()).collect();
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(self.seed ^ (e as u64).wrapping_mul(0x9E37_79B9));
        self.order.shuffle(&mut rng);
    }

    fn get(&mut self, k: usize) -> &Record {
        let n = self.records.len();
        self.set_epoch(k / n);
        &self.records[self.order[k % n]]
    }
}

pub struct SampleStream {
    pools: Vec<Pool>,
    /// Probability of drawing from the text-only pool (pool 1); `None` = one mixed pool.
    text_ratio: Option<f64>,
    seed: u64,
    counters: [usize; 2],
    slot: usize,
}

impl SampleStream {
    /// `image_records` may also hold text-only records when no ratio is given.
    pub fn new(
        records: Vec<Record>,
        text_records: Vec<Record>,
        text_ratio: Option<f64>,
        seed: u64,
    ) -> Self {
        let (pools, ratio) = match text_ratio {
            Some(r) if !text_records.is_empty() && !records.is_empty() => (
                vec![
                    Pool::new(records, seed ^ 0x1111),
                    Pool::new(text_records, seed ^ 0x2222),
                ],
                Some(r.clamp(0.0, 1.0)),
            ),
            _ => {
                let mut all = records;
                all.extend(text_records);
                (vec![Pool::new(all, seed ^ 0x1111)], None)
            }
        };
        SampleStream {
            pools,
            text_ratio: ratio,
            seed,
            counters: [0, 0],
            slot: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pools.iter().map(|p| p.records.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pick_pool(&self, slot: usize) -> usize {
        match self.text_ratio {
            Some(r) => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(
                    self.seed ^ 0x5eed ^ (slot as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
                );
                usize::from(rng.random::<f64>() < r)
            }
            None => 0,
        }
    }

    /// Epochs of the first pool consumed so far (for the metrics).
    pub fn epoch(&self) -> f64 {
        self.counters[0] as f64 / self.pools[0].records.len().max(1) as f64
    }

    /// Skips `n` slots (resume).
    pub fn skip(&mut self, n: usize) {
        for _ in 0..n {
            let p = self.pick_pool(self.slot);
            self.counters[p] += 1;
            self.slot += 1;
        }
    }

    pub fn next_record(&mut self) -> Record {
        let p = self.pick_pool(self.slot);
        let k = self.counters[p];
        self.counters[p] += 1;
        self.slot += 1;
        self.pools[p].get(k).clone()
    }
}
