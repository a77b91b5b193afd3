package proxy

import "testing"

func TestRouterMatch(t *testing.T) {
	names := []string{"default", "api", "apiv2", "wild", "deep", "host-default", "other"}
	pools := map[string]*Pool{}
	for _, n := range names {
		pools[n] = &Pool{PoolConfig: PoolConfig{Name: n}}
	}
	r, err := newRouter([]Route{
		{Pool: "default"},
		{Host: "api.example.com", PathPrefix: "/v1/", Pool: "api"},
		{Host: "API.example.com", PathPrefix: "/v1/beta/", Pool: "apiv2"},
		{Host: "api.example.com", Pool: "host-default"},
		{Host: "*.example.com", Pool: "wild"},
		{Host: "*.deep.example.com", Pool: "deep"},
		{PathPrefix: "/other/", Pool: "other"},
	}, pools, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, path, want string }{
		{"api.example.com", "/v1/users", "api"},
		{"api.example.com:8443", "/v1/users", "api"},
		{"API.Example.COM", "/v1/beta/x", "apiv2"},
		{"api.example.com.", "/v1/users", "api"},
		{"api.example.com", "/v2/", "host-default"},
		{"www.example.com", "/v1/users", "wild"},
		{"a.b.example.com", "/", "wild"},
		{"x.deep.example.com", "/", "deep"},
		{"example.com", "/", "default"},
		{"notexample.com", "/other/1", "other"},
		{"[::1]:8080", "/", "default"},
		{"", "/", "default"},
	} {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			c := r.match(tc.host, tc.path)
			if c == nil || c.pool.Name != tc.want {
				t.Fatalf("match(%q, %q) = %v, want %s", tc.host, tc.path, c, tc.want)
			}
		})
	}

	t.Run("no default gives no match", func(t *testing.T) {
		r, _ := newRouter([]Route{{Host: "a.example.com", Pool: "api"}}, pools, nil)
		if p := r.match("b.example.com", "/"); p != nil {
			t.Fatalf("got %s, want no route", p.pool.Name)
		}
	})
	t.Run("unknown pool is an error", func(t *testing.T) {
		if _, err := newRouter([]Route{{Pool: "missing"}}, pools, nil); err == nil {
			t.Fatal("want an error for a route to a missing pool")
		}
	})
}

func TestRouterMatchAllocatesNothing(t *testing.T) {
	pools := map[string]*Pool{"p": {}}
	r, _ := newRouter([]Route{{Host: "*.example.com", PathPrefix: "/v1/", Pool: "p"}, {Pool: "p"}}, pools, nil)
	if n := testing.AllocsPerRun(100, func() { r.match("www.example.com:443", "/v1/x") }); n != 0 {
		t.Fatalf("match allocates %v times", n)
	}
}
