# EKS managed add-ons, each at the newest version EKS offers for the cluster's Kubernetes
# version. The VPC CNI is in place before any node joins (so pods get addresses, and its
# network-policy agent runs from the first pod on); the others follow the nodes they run on,
# as terraform-aws-eks orders them.
locals {
  addons_before_nodes = {
    # The network-policy agent is off unless asked for; without it NetworkPolicies do nothing.
    vpc-cni = jsonencode({ enableNetworkPolicy = "true" })
  }
  addons_after_nodes = {
    kube-proxy = null
    coredns    = null
    # An EKS community add-on: the HPA's CPU metrics, without a kubectl apply of a URL.
    metrics-server = null
  }
}

data "aws_eks_addon_version" "this" {
  for_each = merge(local.addons_before_nodes, local.addons_after_nodes)

  addon_name         = each.key
  kubernetes_version = aws_eks_cluster.this.version
  most_recent        = true
}

resource "aws_eks_addon" "before_nodes" {
  for_each = local.addons_before_nodes

  cluster_name         = aws_eks_cluster.this.name
  addon_name           = each.key
  addon_version        = data.aws_eks_addon_version.this[each.key].version
  configuration_values = each.value

  # EKS installs its own copies at cluster creation; the managed add-on takes them over.
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "after_nodes" {
  for_each = local.addons_after_nodes

  cluster_name         = aws_eks_cluster.this.name
  addon_name           = each.key
  addon_version        = data.aws_eks_addon_version.this[each.key].version
  configuration_values = each.value

  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  depends_on = [aws_eks_node_group.this]
}
