//! The event bus: every state change the engine makes is published here, kept in a
//! bounded history for `since` replays, and fanned out live to `/events` subscribers.
//! Images publish now; containers, networks and volumes will use the same bus.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// How many past events are kept for `since` replays.
pub const HISTORY: usize = 1024;

/// One event, as `GET /events` sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `image`, `container`, `network`, `volume`, `daemon`.
    pub kind: String,
    /// `pull`, `tag`, `untag`, `delete`, `load`, `import`, `push`, `start`, …
    pub action: String,
    /// The object: an image reference or id, a container id, …
    pub actor_id: String,
    /// Labels plus `name`, `image`, … .
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
}

/// `Actor` of the wire format.
#[derive(Debug, Serialize)]
struct WireActor<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Attributes")]
    attributes: &'a BTreeMap<String, String>,
}

/// The wire format moby 28 sends, legacy `status`/`id`/`from` included.
#[derive(Debug, Serialize)]
struct Wire<'a> {
    status: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "Action")]
    action: &'a str,
    #[serde(rename = "Actor")]
    actor: WireActor<'a>,
    scope: &'a str,
    time: i64,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

impl Event {
    /// A new event stamped now.
    pub fn new(kind: &str, action: &str, actor_id: &str) -> Event {
        Event {
            kind: kind.to_owned(),
            action: action.to_owned(),
            actor_id: actor_id.to_owned(),
            attributes: BTreeMap::new(),
            time_nano: now_nanos(),
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, k: &str, v: &str) -> Event {
        self.attributes.insert(k.to_owned(), v.to_owned());
        self
    }

    /// The JSON line `GET /events` sends (without the newline).
    pub fn to_json(&self) -> String {
        let wire = Wire {
            status: &self.action,
            id: &self.actor_id,
            from: self.attributes.get("image").map(String::as_str),
            kind: &self.kind,
            action: &self.action,
            actor: WireActor {
                id: &self.actor_id,
                attributes: &self.attributes,
            },
            scope: "local",
            time: self.time_nano.div_euclid(1_000_000_000),
            time_nano: self.time_nano,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// Which events a subscriber wants (`filters=` of `/events`); every given key must match,
/// any value of a key may.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `type=`.
    pub kinds: Vec<String>,
    /// `event=` (actions).
    pub actions: Vec<String>,
    /// `image=`: an image event's actor, or the `image` attribute.
    pub images: Vec<String>,
    /// `container=`: a container id or name.
    pub containers: Vec<String>,
    /// `label=key` or `label=key=value`.
    pub labels: Vec<String>,
}

impl EventFilter {
    /// Builds a filter from the decoded `filters` map; unknown keys are an error naming them.
    pub fn from_map(map: &BTreeMap<String, Vec<String>>) -> Result<EventFilter, String> {
        let mut f = EventFilter::default();
        for (k, v) in map {
            let slot = match k.as_str() {
                "type" => &mut f.kinds,
                "event" => &mut f.actions,
                "image" => &mut f.images,
                "container" => &mut f.containers,
                "label" => &mut f.labels,
                other => return Err(format!("invalid filter '{other}'")),
            };
            slot.extend(v.iter().cloned());
        }
        Ok(f)
    }

    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|x| f(x))
        };
        any(&self.kinds, &|k| k == e.kind)
            && any(&self.actions, &|a| {
                a == e.action || e.action.starts_with(&format!("{a}:"))
            })
            && any(&self.images, &|i| {
                let img = if e.kind == "image" {
                    Some(e.actor_id.as_str())
                } else {
                    e.attributes.get("image").map(String::as_str)
                };
                img.is_some_and(|x| {
                    x == i
                        || x.split(':').next() == Some(i)
                        || x.strip_prefix("sha256:").is_some_and(|h| h.starts_with(i))
                }) || e.attributes.get("name").is_some_and(|n| n == i)
            })
            && any(&self.containers, &|c| {
                e.kind == "container"
                    && (e.actor_id.starts_with(c)
                        || e.attributes.get("name").is_some_and(|n| n == c))
            })
            && self.labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => e.attributes.get(k).is_some_and(|x| x == v),
                None => e.attributes.contains_key(l.as_str()),
            })
    }
}

/// The bus. Publishing never blocks; a slow subscriber misses events (it is told by a
/// lagged receiver) rather than stalling the engine.
#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(HISTORY);
        EventBus {
            tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }

    /// How many subscribers are listening.
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Records and broadcasts `e`.
    pub fn publish(&self, e: Event) {
        let mut h = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(e.clone());
        // Sent under the history lock so a subscriber sees each event exactly once.
        let _ = self.tx.send(e);
    }

    /// The past events with `since_nano <= time` (when given) and a live receiver that
    /// starts right after them.
    pub fn subscribe(&self, since_nano: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let h = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rx = self.tx.subscribe();
        let past = match since_nano {
            Some(s) => h.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => Vec::new(),
        };
        (past, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_has_moby_fields() {
        let e = Event::new("image", "tag", "busybox:latest").attr("name", "busybox:latest");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["Type"], "image");
        assert_eq!(v["Action"], "tag");
        assert_eq!(v["status"], "tag");
        assert_eq!(v["Actor"]["ID"], "busybox:latest");
        assert_eq!(v["Actor"]["Attributes"]["name"], "busybox:latest");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"].as_i64().unwrap(), e.time_nano / 1_000_000_000);
    }

    #[test]
    fn filters_match_type_action_image_label() {
        let e = Event::new("image", "untag", "sha256:abcd")
            .attr("name", "busybox:latest")
            .attr("l", "v");
        let mut m = BTreeMap::new();
        m.insert("type".to_owned(), vec!["image".to_owned()]);
        assert!(EventFilter::from_map(&m).unwrap().matches(&e));
        m.insert("event".to_owned(), vec!["tag".to_owned()]);
        assert!(!EventFilter::from_map(&m).unwrap().matches(&e));
        m.insert(
            "event".to_owned(),
            vec!["tag".to_owned(), "untag".to_owned()],
        );
        assert!(EventFilter::from_map(&m).unwrap().matches(&e));
        m.insert("image".to_owned(), vec!["busybox:latest".to_owned()]);
        assert!(EventFilter::from_map(&m).unwrap().matches(&e));
        m.insert("label".to_owned(), vec!["l=w".to_owned()]);
        assert!(!EventFilter::from_map(&m).unwrap().matches(&e));
        m.insert("bogus".to_owned(), vec![]);
        assert_eq!(
            EventFilter::from_map(&m).unwrap_err(),
            "invalid filter 'bogus'"
        );
    }

    #[test]
    fn subscribe_replays_since_then_streams_live() {
        let bus = EventBus::new();
        let first = Event::new("image", "load", "a");
        let t = first.time_nano;
        bus.publish(first);
        let (past, mut rx) = bus.subscribe(Some(t));
        assert_eq!(past.len(), 1);
        let (none, _) = bus.subscribe(None);
        assert!(none.is_empty());
        bus.publish(Event::new("image", "tag", "b"));
        assert_eq!(rx.try_recv().unwrap().actor_id, "b");
    }
}
