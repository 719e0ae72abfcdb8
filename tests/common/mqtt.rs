//! The MOM side of MQTT: [`Collector`], a subscriber that records everything published under a
//! topic filter across broker restarts, and [`mqtt_publish`], a one-shot publisher.

use super::{eventually, unique_name};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeReasonCode,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message seen by a [`Collector`].
#[derive(Clone, Debug)]
pub struct Received {
    pub topic: String,
    /// The payload parsed as JSON; `Value::Null` if it is not JSON (see `raw`).
    pub payload: serde_json::Value,
    pub raw: Vec<u8>,
    pub retain: bool,
    pub qos: u8,
}

/// An MQTT subscriber (QoS 1, clean session, own client id) that records every message under a
/// topic filter from a background task. It reconnects after broker restarts and subscribes again
/// on every CONNACK (clean session: the broker forgot the subscription).
///
/// Note: with clean session, messages published while the collector is disconnected are not
/// queued for it by the broker; tests that restart the broker should wait for
/// [`Collector::wait_subscriptions`] before expecting new messages.
pub struct Collector {
    filter: String,
    client: AsyncClient,
    msgs: Arc<Mutex<Vec<Received>>>,
    subscriptions: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Connects to 127.0.0.1:`broker_port`, subscribes to `filter` at QoS 1, and returns after
    /// the first SUBACK (panics after 10 s).
    pub async fn start(broker_port: u16, filter: &str) -> Collector {
        Self::start_with(broker_port, filter, None, None).await
    }

    /// A collector that logs in with a username and password (a broker without anonymous access).
    pub async fn start_with_login(
        broker_port: u16,
        filter: &str,
        user: &str,
        password: &str,
    ) -> Collector {
        Self::start_with(broker_port, filter, None, Some((user, password))).await
    }

    /// A collector with a persistent session under `client_id`: with a broker that keeps
    /// sessions (`persistence true`), messages published while the collector is reconnecting
    /// after a broker restart are queued for it instead of lost.
    pub async fn start_persistent(broker_port: u16, filter: &str, client_id: &str) -> Collector {
        Self::start_with(broker_port, filter, Some(client_id), None).await
    }

    async fn start_with(
        broker_port: u16,
        filter: &str,
        persistent_id: Option<&str>,
        login: Option<(&str, &str)>,
    ) -> Collector {
        let client_id = persistent_id
            .map(str::to_string)
            .unwrap_or_else(|| unique_name("collector"));
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", broker_port);
        opts.set_keep_alive(Duration::from_secs(5))
            .set_clean_session(persistent_id.is_none())
            .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024)
            .set_request_channel_capacity(64);
        if let Some((user, password)) = login {
            opts.set_credentials(user, password);
        }
        let (client, eventloop) = AsyncClient::new(opts, 64);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let subscriptions = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(Self::run(
            eventloop,
            client.clone(),
            filter.to_string(),
            msgs.clone(),
            subscriptions.clone(),
        ));
        let collector = Collector {
            filter: filter.to_string(),
            client,
            msgs,
            subscriptions,
            task,
        };
        if !collector
            .wait_subscriptions(1, Duration::from_secs(10))
            .await
        {
            panic!("Collector: no SUBACK for {filter:?} from 127.0.0.1:{broker_port} within 10 s");
        }
        collector
    }

    async fn run(
        mut eventloop: EventLoop,
        client: AsyncClient,
        filter: String,
        msgs: Arc<Mutex<Vec<Received>>>,
        subscriptions: Arc<AtomicUsize>,
    ) {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // Clean session: (re)subscribe on every connection.
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        eprintln!("Collector: subscribe request failed: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                    {
                        subscriptions.fetch_add(1, Ordering::SeqCst);
                    } else {
                        eprintln!("Collector: subscription to {filter:?} refused: {ack:?}");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let raw = p.payload.to_vec();
                    let payload = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                    msgs.lock().unwrap().push(Received {
                        topic: p.topic.clone(),
                        payload,
                        raw,
                        retain: p.retain,
                        qos: p.qos as u8,
                    });
                }
                Ok(_) => {}
                Err(_) => {
                    // Broker down or connection lost: keep polling, rumqttc reconnects.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// A copy of everything received so far, in arrival order.
    pub fn snapshot(&self) -> Vec<Received> {
        self.msgs.lock().unwrap().clone()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.msgs.lock().unwrap().clear();
    }

    /// How many successful SUBACKs so far (1 after `start`, +1 after each reconnection).
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` SUBACKs have been received.
    pub async fn wait_subscriptions(&self, n: usize, timeout: Duration) -> bool {
        eventually(timeout, || self.subscriptions() >= n).await
    }

    /// Waits until `pred` holds for the messages received so far; false on timeout.
    pub async fn wait_for<F>(&self, pred: F, timeout: Duration) -> bool
    where
        F: Fn(&[Received]) -> bool,
    {
        eventually(timeout, || pred(&self.msgs.lock().unwrap())).await
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}

/// Publishes one message with a fresh client (clean session) and waits until it is on the
/// broker: PUBACK for QoS 1, written to the socket for QoS 0. Retries with a new connection
/// until `timeout`, then panics.
pub async fn mqtt_publish(
    broker_port: u16,
    topic: &str,
    payload: impl Into<Vec<u8>>,
    qos: QoS,
    retain: bool,
    timeout: Duration,
) {
    let payload: Vec<u8> = payload.into();
    let deadline = Instant::now() + timeout;
    let mut last_err = String::from("timed out");
    while Instant::now() < deadline {
        let mut opts = MqttOptions::new(unique_name("publisher"), "127.0.0.1", broker_port);
        opts.set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(opts, 8);
        client
            .publish(topic, qos, retain, payload.clone())
            .await
            .expect("queue publish");
        let left = deadline.saturating_duration_since(Instant::now());
        let done = tokio::time::timeout(left, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) if qos != QoS::AtMostOnce => {
                        return Ok(())
                    }
                    Ok(Event::Incoming(Packet::PubComp(_))) if qos == QoS::ExactlyOnce => {
                        return Ok(())
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => {
                        return Ok(())
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match done {
            Ok(Ok(())) => {
                let _ = client.try_disconnect();
                // Flush the DISCONNECT (best effort).
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                return;
            }
            Ok(Err(e)) => {
                last_err = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => break,
        }
    }
    panic!("mqtt_publish to 127.0.0.1:{broker_port} {topic:?} failed: {last_err}");
}
