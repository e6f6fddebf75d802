use glommio::{LocalExecutorBuilder, Placement};
fn main() {
    let h = LocalExecutorBuilder::new(Placement::Fixed(0)).spawn(|| async move {
        let l = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("bound {:?}", l.local_addr());
    }).unwrap();
    h.join().unwrap();
}
