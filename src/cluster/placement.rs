//! Where a tenant's state lives (`CLUSTER.md` §4.1, §4.5): tenants map to a fixed number of
//! shards by hash, and each shard's owner and standby are the first two live nodes of the
//! shard's rendezvous ranking. Pure functions: every node computes the same answer from the
//! same list of live nodes, and a node that leaves moves only the shards it held.

use sha2::{Digest, Sha256};

/// The first eight bytes of the SHA-256 of `parts`, as a number.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    let digest = h.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

/// The shard of `tenant` among `shards` (at least one): `sha256(tenant) mod shards`.
pub fn shard_of(tenant: &str, shards: u32) -> u32 {
    (hash(&[tenant.as_bytes()]) % u64::from(shards.max(1))) as u32
}

/// `nodes` ranked for `shard`, best first, by `sha256(node ‖ shard)` (ties, which need two
/// equal hashes, by name): the first is the shard's owner, the second its standby.
pub fn ranking<'a>(shard: u32, nodes: &[&'a str]) -> Vec<&'a str> {
    let mut ranked: Vec<(u64, &str)> = nodes
        .iter()
        .map(|n| (hash(&[n.as_bytes(), &shard.to_be_bytes()]), *n))
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.dedup_by(|a, b| a.1 == b.1);
    ranked.into_iter().map(|(_, n)| n).collect()
}

/// The standby of `shard` among `nodes` while `owner` holds it: the best-ranked node other
/// than the owner, the one that takes the shard over if the owner goes (or that a
/// better-ranked owner-to-be gets it handed to).
pub fn standby<'a>(shard: u32, nodes: &[&'a str], owner: Option<&str>) -> Option<&'a str> {
    ranking(shard, nodes).into_iter().find(|n| Some(*n) != owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_spread_over_every_shard_and_always_to_the_same_one() {
        let mut counts = [0u32; 16];
        for t in 0..1600 {
            let tenant = format!("app-{t}");
            let shard = shard_of(&tenant, 16);
            assert_eq!(shard, shard_of(&tenant, 16));
            counts[shard as usize] += 1;
        }
        // 100 each on average; a hash that clumped would leave a shard far off.
        assert!(counts.iter().all(|&c| (50..=150).contains(&c)), "{counts:?}");
        assert_eq!(shard_of("default", 1), 0);
        assert_eq!(shard_of("default", 0), 0, "no shards counts as one");
    }

    #[test]
    fn a_node_that_leaves_moves_only_its_own_shards() {
        let all = ["node-a", "node-b", "node-c", "node-d"];
        let without_c = ["node-a", "node-b", "node-d"];
        let mut owned_by_c = 0;
        for shard in 0..64 {
            let before = ranking(shard, &all);
            assert_eq!(before.len(), 4);
            assert_eq!(
                before,
                ranking(shard, &["node-d", "node-c", "node-b", "node-a"]),
                "order-free"
            );
            let after = ranking(shard, &without_c);
            // The others keep their relative order: a shard whose owner stays keeps it, and
            // one owned by the leaver goes to its standby.
            let kept: Vec<&str> = before.iter().copied().filter(|n| *n != "node-c").collect();
            assert_eq!(after, kept);
            if before[0] == "node-c" {
                owned_by_c += 1;
                assert_eq!(after[0], before[1]);
            } else {
                assert_eq!(after[0], before[0]);
            }
        }
        assert!((4..=28).contains(&owned_by_c), "node-c owned {owned_by_c} of 64");
        assert_eq!(ranking(3, &["x", "x"]), ["x"]);
    }

    #[test]
    fn the_standby_is_the_best_ranked_node_but_the_owner() {
        let all = ["node-a", "node-b", "node-c"];
        for shard in 0..16 {
            let ranked = ranking(shard, &all);
            assert_eq!(standby(shard, &all, Some(ranked[0])), Some(ranked[1]));
            // An owner that is not first (a hand-over pending): the first is its standby.
            assert_eq!(standby(shard, &all, Some(ranked[2])), Some(ranked[0]));
            assert_eq!(standby(shard, &all, None), Some(ranked[0]));
        }
        assert_eq!(standby(0, &["only"], Some("only")), None);
        assert!(ranking(3, &[]).is_empty());
    }
}
