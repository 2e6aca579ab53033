use super::*;

fn kubeconfig() -> Kubeconfig {
    Kubeconfig::from_yaml(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: a\n  cluster: {server: 'https://a.example:6443'}\n\
         - name: b\n  cluster: {server: 'https://b.example:6443'}\n\
         users:\n- name: u\n  user: {token: not-a-secret}\n\
         contexts:\n- name: prod\n  context: {cluster: a, user: u}\n\
         - name: staging\n  context: {cluster: b, user: u}\n\
         current-context: prod\n",
    )
    .unwrap()
}

#[test]
fn a_known_context_is_selected() {
    let o = options(&kubeconfig(), Some("staging"), "kc.yaml").unwrap();
    assert_eq!(o.context.as_deref(), Some("staging"));
    let o = options(&kubeconfig(), None, "kc.yaml").unwrap();
    assert_eq!(o.context, None);
}

#[test]
fn an_unknown_context_names_itself_the_file_and_the_contexts() {
    let Err(err) = options(&kubeconfig(), Some("prd"), "kc.yaml") else {
        panic!("an unknown context was accepted");
    };
    assert_eq!(
        err.to_string(),
        "--context \"prd\": no such context in kc.yaml (contexts: prod, staging)"
    );
}

#[tokio::test]
async fn the_selected_context_decides_the_server() {
    let kc = kubeconfig();
    let o = options(&kc, Some("staging"), "kc.yaml").unwrap();
    let config = Config::from_custom_kubeconfig(kc, &o).await.unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://b.example:6443/");
}
