//! An interface that vanishes and comes back (same name) is re-attached: status says not
//! attached while it is gone, attached once it returns, and the rules enforce again. Both for
//! a subscriber-facing interface (`xdp`: port 25 blocked) and for an uplink carrying
//! `xdp-inbound` (only the spam checker reaches the primary MX on 25).
use std::net::TcpListener;

use tests::agent::{
    Agent, AgentFiles, Lab, RELAY, SERVER, SUBSCRIBER,
    kernel::xdp_prog_id,
    traffic::{connects, connects_between, smtp_listener},
    wait_for,
};
use tests::netns::{addr, exec_ok, in_netns};

#[test]
fn vanished_interface_is_reattached_when_it_returns() {
    let lab = Lab::new();
    let _listener = smtp_listener(&lab);
    let files = AgentFiles::new();
    // XDP only: with the tcx backstop on the uplink, traffic could not show the XDP side.
    files.write_xdp_only_config(&lab, &format!("[allow]\nrelays = [\"{RELAY}/32\"]"));
    let agent = Agent::start(&lab, files);
    assert!(!connects(&lab, SUBSCRIBER));
    let before = xdp_prog_id(&lab.rtr, &lab.rtr_sub_if).expect("our XDP program attached");

    exec_ok(&lab.rtr, &["ip", "link", "del", &lab.rtr_sub_if]);
    wait_for("status to show the interface not attached", 10, || {
        agent.attachment(&lab.rtr_sub_if)["attached"] == false
    });

    lab.connect_subscriber_side();
    wait_for("the returning interface to be re-attached", 10, || {
        agent.attachment(&lab.rtr_sub_if)["attached"] == true
    });
    assert_eq!(
        xdp_prog_id(&lab.rtr, &lab.rtr_sub_if),
        Some(before),
        "the same loaded program enforces on the new interface"
    );
    assert!(!connects(&lab, SUBSCRIBER), "port 25 blocked again");
    assert!(connects(&lab, RELAY), "the relay still passes");
    let log = agent.log_text();
    assert!(
        log.contains("not enforcing here") && log.contains("re-attached"),
        "both transitions are logged:\n{log}"
    );
}

/// A spam checker on the Internet side; the primary MX is the lab's relay address.
const CHECKER: &str = "198.51.100.40";

#[test]
fn vanished_uplink_gets_xdp_inbound_back_when_it_returns() {
    let lab = Lab::new();
    addr(&lab.net, &lab.net_if, &format!("{CHECKER}/24"));
    let _primary_mx = in_netns(&lab.sub, || {
        TcpListener::bind((RELAY, 25)).expect("bind the primary MX's port 25")
    });
    let files = AgentFiles::new();
    files.write_config_for(
        &[(&lab.rtr_up_if, "xdp-inbound")],
        &format!("[inbound]\nprotected_mx = [\"{RELAY}/32\"]\nmx_senders = [\"{CHECKER}/32\"]\n"),
    );
    let agent = Agent::start(&lab, files);
    let enforced = || {
        assert!(
            !connects_between(&lab.net, SERVER, RELAY, 25),
            "an Internet sender reached the primary MX on 25"
        );
        assert!(
            connects_between(&lab.net, CHECKER, RELAY, 25),
            "the spam checker could not reach the primary MX on 25"
        );
    };
    enforced();
    let before = xdp_prog_id(&lab.rtr, &lab.rtr_up_if).expect("the inbound program attached");

    exec_ok(&lab.rtr, &["ip", "link", "del", &lab.rtr_up_if]);
    wait_for("status to show the uplink not attached", 10, || {
        agent.attachment(&lab.rtr_up_if)["attached"] == false
    });

    lab.connect_internet_side();
    addr(&lab.net, &lab.net_if, &format!("{CHECKER}/24"));
    wait_for("the returning uplink to be re-attached", 10, || {
        agent.attachment(&lab.rtr_up_if)["attached"] == true
    });
    assert_eq!(
        xdp_prog_id(&lab.rtr, &lab.rtr_up_if),
        Some(before),
        "the same loaded inbound program enforces on the new uplink"
    );
    enforced();
    let log = agent.log_text();
    assert!(
        log.contains("not enforcing here") && log.contains("re-attached"),
        "both transitions are logged:\n{log}"
    );
}
