use aya::{
    EbpfLoader,
    programs::{TestRun, TestRunOptions, Xdp},
};
#[test]
fn smoke() {
    let mut bpf = EbpfLoader::new()
        .load(egress_agent::EBPF_OBJECT)
        .expect("load");
    let prog: &mut Xdp = bpf.program_mut("egress_xdp").unwrap().try_into().unwrap();
    prog.load().expect("verify");
    let mut frame = vec![0u8; 14 + 20 + 20];
    frame[12] = 0x08;
    frame[13] = 0x00;
    frame[14] = 0x45;
    frame[16] = 0;
    frame[17] = 40;
    frame[23] = 6;
    frame[26..30].copy_from_slice(&[203, 0, 113, 5]);
    frame[30..34].copy_from_slice(&[198, 51, 100, 1]);
    frame[36] = 0;
    frame[37] = 25;
    frame[46] = 0x50;
    frame[47] = 0x02;
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            ..Default::default()
        })
        .expect("run");
    println!("verdict {}", r.return_value);
    frame[37] = 80;
    let r2 = prog
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            ..Default::default()
        })
        .expect("run");
    println!("verdict {}", r2.return_value);
    assert_eq!(r.return_value, 1);
    assert_eq!(r2.return_value, 2);
}
