module hoist.test/labplug

go 1.19
