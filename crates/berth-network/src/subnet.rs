//! Choosing a subnet for a new network that collides with neither host routes nor other
//! networks.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

/// A pool to carve subnets from: `base` split into subnets of `/size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubnetPool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl SubnetPool {
    /// Docker's default address pools: 172.17.0.0/16 … 172.31.0.0/16 as /16s, then
    /// 192.168.0.0/16 as /20s.
    pub fn docker_defaults() -> Vec<SubnetPool> {
        vec![
            SubnetPool {
                base: Ipv4Net::new(Ipv4Addr::new(172, 17, 0, 0), 16).expect("valid"),
                size: 16,
            },
            SubnetPool {
                base: Ipv4Net::new(Ipv4Addr::new(172, 18, 0, 0), 15).expect("valid"),
                size: 16,
            },
            SubnetPool {
                base: Ipv4Net::new(Ipv4Addr::new(172, 20, 0, 0), 14).expect("valid"),
                size: 16,
            },
            SubnetPool {
                base: Ipv4Net::new(Ipv4Addr::new(172, 24, 0, 0), 14).expect("valid"),
                size: 16,
            },
            SubnetPool {
                base: Ipv4Net::new(Ipv4Addr::new(172, 28, 0, 0), 14).expect("valid"),
                size: 16,
            },
            SubnetPool {
                base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("valid"),
                size: 20,
            },
        ]
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet from `pools` that overlaps none of `taken` (other networks' subnets and
/// host routes). A default route (0.0.0.0/0) is ignored, as Docker does.
pub fn pick_subnet(pools: &[SubnetPool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    let taken: Vec<&Ipv4Net> = taken.iter().filter(|t| t.prefix_len() > 0).collect();
    pools.iter().find_map(|pool| {
        pool.base
            .subnets(pool.size)
            .ok()?
            .find(|cand| !taken.iter().any(|t| overlaps(cand, t)))
    })
}

/// Parse `/proc/net/route` (IPv4 routes: hex little-endian destination and mask).
pub fn parse_proc_routes(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // the kernel prints the network-order word as a native integer
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let mask = Ipv4Addr::from(mask.to_ne_bytes());
            Ipv4Net::with_netmask(dest, mask).ok().map(|n| n.trunc())
        })
        .collect()
}

/// The IPv4 routes of the calling thread's network namespace.
pub fn host_routes() -> std::io::Result<Vec<Ipv4Net>> {
    Ok(parse_proc_routes(&std::fs::read_to_string(Path::new(
        "/proc/thread-self/net/route",
    ))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_routes_and_networks() {
        let pools = SubnetPool::docker_defaults();
        assert_eq!(
            pick_subnet(&pools, &[]),
            Some("172.17.0.0/16".parse().unwrap())
        );
        let taken = vec![
            "0.0.0.0/0".parse().unwrap(),
            "172.17.5.0/24".parse().unwrap(),
            "172.16.0.0/12".parse().unwrap(),
        ];
        assert_eq!(
            pick_subnet(&pools, &taken),
            Some("192.168.0.0/20".parse().unwrap())
        );
        let own = [SubnetPool {
            base: "10.77.0.0/16".parse().unwrap(),
            size: 24,
        }];
        let taken = vec![
            "10.77.0.0/24".parse().unwrap(),
            "10.77.1.128/25".parse().unwrap(),
        ];
        assert_eq!(
            pick_subnet(&own, &taken),
            Some("10.77.2.0/24".parse().unwrap())
        );
        let small = [SubnetPool {
            base: "10.78.0.0/24".parse().unwrap(),
            size: 24,
        }];
        assert_eq!(pick_subnet(&small, &["10.0.0.0/8".parse().unwrap()]), None);
    }

    #[test]
    fn parses_proc_net_route() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_proc_routes(text),
            vec![
                "0.0.0.0/0".parse().unwrap(),
                "192.168.2.0/24".parse::<Ipv4Net>().unwrap(),
                "172.17.0.0/16".parse().unwrap()
            ]
        );
    }
}
