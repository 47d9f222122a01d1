module cronfleet.io/hack/nodeprobe

go 1.24.0
