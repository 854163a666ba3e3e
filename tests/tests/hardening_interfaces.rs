//! An interface that vanishes and comes back (same name) is re-attached: status says not
//! attached while it is gone, attached once it returns, and port 25 is blocked again.
use tests::agent::{
    Agent, AgentFiles, Lab, RELAY, SUBSCRIBER,
    kernel::xdp_prog_id,
    traffic::{connects, smtp_listener},
    wait_for,
};
use tests::netns::exec_ok;

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
