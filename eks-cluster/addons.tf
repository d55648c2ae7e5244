# EKS managed add-ons. The VPC CNI is in place before any node joins (so pods get addresses, and
# its network-policy agent runs from the first pod on); the others follow the nodes they run on,
# as terraform-aws-eks orders them.
locals {
  # One version per add-on per Kubernetes minor, so that an apply moves an add-on only when this
  # table does; a kubernetes_version without a row is refused at plan (variables.tf). The managed
  # add-ons' versions are the ones their pages of the EKS User Guide list for the minor (README,
  # "Verified against"); `aws eks describe-addon-versions --addon-name NAME --kubernetes-version
  # 1.35` shows every build EKS offers. AWS publishes no such table for metrics-server, so it
  # comes from its upstream Helm chart instead (README, step 8): its entry is the chart's version,
  # whose metrics-server release supports the minor (the upstream compatibility matrix).
  addon_versions = {
    "1.35" = {
      vpc-cni        = "v1.21.1-eksbuild.7"
      coredns        = "v1.13.2-eksbuild.4"
      kube-proxy     = "v1.35.3-eksbuild.2"
      metrics-server = "3.13.1" # chart 3.13.1 is metrics-server v0.8.1, for Kubernetes 1.31+
    }
  }
  pinned_addons = local.addon_versions[var.kubernetes_version]

  addons_before_nodes = {
    # The network-policy agent is off unless asked for; without it NetworkPolicies do nothing.
    vpc-cni = jsonencode({ enableNetworkPolicy = "true" })
  }
  addons_after_nodes = {
    kube-proxy = null
    coredns    = null
  }
}

resource "aws_eks_addon" "before_nodes" {
  for_each = local.addons_before_nodes

  cluster_name         = aws_eks_cluster.this.name
  addon_name           = each.key
  addon_version        = local.pinned_addons[each.key]
  configuration_values = each.value

  # EKS installs its own copies at cluster creation; the managed add-on takes them over.
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "after_nodes" {
  for_each = local.addons_after_nodes

  cluster_name         = aws_eks_cluster.this.name
  addon_name           = each.key
  addon_version        = local.pinned_addons[each.key]
  configuration_values = each.value

  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  depends_on = [aws_eks_node_group.this]
}
