use super::*;
#[tokio::test]
async fn print_dummy() {
    println!(
        "HASH {}",
        hash_password("not a password of anyone".to_owned())
            .await
            .unwrap()
    );
}
