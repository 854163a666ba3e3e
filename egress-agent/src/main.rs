fn main() {
    println!("{}", egress_agent::EBPF_OBJECT.len());
}
