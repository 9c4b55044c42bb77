//! Retention in the vault per mount, independent of RMAN's own `RECOVERY WINDOW`: keep the
//! newest recovery point of each of the last `daily` days, `weekly` ISO weeks, `monthly`
//! months and `yearly` years (grandfather-father-son). The newest point is always kept.
//! Periods are counted in UTC, over the days that have a point (a day without a backup does
//! not use up a daily slot).

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// Which recovery points of a mount the vault keeps (see the module documentation): the
/// newest point of each of the last `daily` days, `weekly` ISO weeks, `monthly` months and
/// `yearly` years that have one, in UTC, and always the newest point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days kept.
    #[serde(default)]
    pub daily: u32,
    /// Weeks kept.
    #[serde(default)]
    pub weekly: u32,
    /// Months kept.
    #[serde(default)]
    pub monthly: u32,
    /// Years kept.
    #[serde(default)]
    pub yearly: u32,
}

/// The period a time falls in, for one rule: (year, day / week / month / 0).
type Period = dyn Fn(DateTime<Utc>) -> (i32, u32);

/// Which of the points created at `created` (Unix seconds) the rules keep, index by index.
pub fn keep(created: &[i64], r: &Retention) -> Vec<bool> {
    let mut order: Vec<usize> = (0..created.len()).collect();
    // Newest first; the later index wins a tie (it was taken later).
    order.sort_by(|&a, &b| created[b].cmp(&created[a]).then(b.cmp(&a)));
    let mut kept = vec![false; created.len()];
    if let Some(&newest) = order.first() {
        kept[newest] = true;
    }
    let when = |i: usize| DateTime::<Utc>::from_timestamp(created[i], 0).unwrap_or_default();
    let rules: [(u32, &Period); 4] = [
        (r.daily, &|t| (t.year(), t.ordinal())),
        (r.weekly, &|t| (t.iso_week().year(), t.iso_week().week())),
        (r.monthly, &|t| (t.year(), t.month())),
        (r.yearly, &|t| (t.year(), 0)),
    ];
    for (count, period) in rules {
        let mut seen: Vec<(i32, u32)> = Vec::new();
        for &i in &order {
            let p = period(when(i));
            if seen.contains(&p) {
                continue;
            }
            if seen.len() >= count as usize {
                break;
            }
            seen.push(p);
            kept[i] = true;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    // 2026-01-05 was a Monday.
    const MONDAY: i64 = 1_767_571_200;

    fn r(daily: u32, weekly: u32, monthly: u32, yearly: u32) -> Retention {
        Retention {
            daily,
            weekly,
            monthly,
            yearly,
        }
    }

    #[test]
    fn daily_keeps_the_newest_point_of_each_recent_day() {
        // Two points a day for four days.
        let t: Vec<i64> = (0..8)
            .map(|i| MONDAY + (i / 2) * DAY + (i % 2) * 3600)
            .collect();
        let k = keep(&t, &r(2, 0, 0, 0));
        assert_eq!(k, [false, false, false, false, false, true, false, true]);
    }

    #[test]
    fn weekly_monthly_and_yearly_reach_back() {
        // One point a day for 70 days.
        let t: Vec<i64> = (0..70).map(|i| MONDAY + i * DAY).collect();
        let k = keep(&t, &r(3, 2, 0, 0));
        let kept: Vec<usize> = (0..70).filter(|&i| k[i]).collect();
        // The last three days, and Sunday 2026-03-08's week is already kept: the week before.
        assert_eq!(kept, [62, 67, 68, 69]);
        let k = keep(&t, &r(0, 0, 3, 1));
        let kept: Vec<usize> = (0..70).filter(|&i| k[i]).collect();
        // Newest of March (69), February (54: Feb 28), January (26: Jan 31).
        assert_eq!(kept, [26, 54, 69]);
    }

    #[test]
    fn no_rules_keep_only_the_newest() {
        assert_eq!(
            keep(&[MONDAY, MONDAY + 1], &Retention::default()),
            [false, true]
        );
        assert!(keep(&[], &r(1, 1, 1, 1)).is_empty());
    }
}
