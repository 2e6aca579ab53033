use super::*;
use anyhow::bail;

#[test]
fn parallel_map_keeps_order_and_stops_on_error() {
    let items: Vec<u32> = (0..100).collect();
    let out = parallel_map(&items, 8, |i| Ok(i * 2)).unwrap();
    assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    let err = parallel_map(
        &items,
        8,
        |i| if *i == 50 { bail!("boom {i}") } else { Ok(*i) },
    );
    assert_eq!(err.unwrap_err().to_string(), "boom 50");
    assert!(parallel_map(&Vec::<u32>::new(), 4, |i| Ok(*i))
        .unwrap()
        .is_empty());
}
